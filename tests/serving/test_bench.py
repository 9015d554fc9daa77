"""`art bench serve` runs end to end: equal token counts on both sides, one JSON object last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.train


def test_bench_serve_prints_its_summary_last(tiny_model: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "stack", "bench", "serve", "--model-dir", str(tiny_model), "--chats",
                          "3", "--max-tokens", "5", "--repeats", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["completion_tokens"] == summary["baseline_completion_tokens"] == 15
    assert summary["ratio"] == pytest.approx(summary["tokens_per_s"] / summary["baseline_tokens_per_s"], rel=1e-2)
    assert summary["repeats"] == 2 and summary["chats"] == 3
    assert out.stderr.count(" served: 15 tokens") == 2 and out.stderr.count("baseline: 15 tokens") == 2
