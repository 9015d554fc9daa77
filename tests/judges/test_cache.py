"""Cache keys are stable across processes; the LRU evicts; the SQLite file survives a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from judges import JudgeCache, content_hash

ROOT = Path(__file__).resolve().parents[2]


def test_hash_is_canonical_and_stable_across_processes() -> None:
    value = {"b": [1, "é"], "a": {"y": 2, "x": 1}}
    assert content_hash(value) == content_hash({"a": {"x": 1, "y": 2}, "b": [1, "é"]})
    code = "from judges import content_hash; print(content_hash({'a': {'x': 1, 'y': 2}, 'b': [1, 'é']}))"
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == content_hash(value)


def test_lru_eviction_and_versions() -> None:
    cache = JudgeCache(max_entries=2)
    cache.put("h1", "v1", "a")
    cache.put("h2", "v1", "b")
    assert cache.get("h1", "v1") == "a"  # h1 now most recent
    cache.put("h3", "v1", "c")
    assert cache.get("h2", "v1") is None and cache.get("h1", "v1") == "a" and len(cache) == 2
    assert cache.get("h1", "v2") is None


def test_disk_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    first = JudgeCache(max_entries=1, path=path)
    first.put("h1", "v1", "a")
    first.put("h2", "v1", "b")  # h1 leaves memory but stays on disk
    assert first.get("h1", "v1") == "a"
    first.close()
    assert JudgeCache(path=path).get("h2", "v1") == "b"
