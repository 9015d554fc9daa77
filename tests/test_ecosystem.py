"""Standard tools read our topics: kcat through the embedded registry, avro-c on our schemas.

kcat decodes Avro with libserdes (Confluent wire format + registry lookups) and avro-c (the
decoding itself). Debian's kcat 1.7.1 is built without libserdes, so the kcat test skips there;
the avro-c test still proves the decoding half on every schema we publish (named types, unions
of records, logical types), with the exact bytes our codec writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from schemas.catalog import SCHEMA_FILES, schema_text
from schemas.codec import HEADER, Codec
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from stack.registry_server import RegistryServer
from tests.ingest.helpers import make_tracker, run_agent
from tests.test_contract import samples


def kcat_skip_reason() -> str | None:
    if shutil.which("kcat") is None:
        return "kcat not installed (apt-get install kcat)"
    version = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
    if "Avro" not in version:  # kcat lists "Avro" among its features when built with libserdes
        return "this kcat is built without Avro/Schema-Registry support (Debian's kcat 1.7.1 lacks libserdes)"
    return None


def branch(union: dict[str, Any]) -> tuple[str, Any]:
    """A union value as JSON tools print it: one key, the branch's name (avro-c drops the namespace)."""
    [(name, value)] = union.items()
    return name.rsplit(".", 1)[-1], value


@pytest.mark.skipif(kcat_skip_reason() is not None, reason=str(kcat_skip_reason()))
def test_kcat_decodes_a_tracked_session(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.json"

    async def produce() -> str:
        async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry=registry_file) as tracker:
            return await run_agent(tracker, agent=7, steps=2)

    session_id = asyncio.run(produce())
    with RegistryServer(registry_file) as srv:
        done = subprocess.run(
            ["kcat", "-C", "-b", kafka_bootstrap, "-t", topics.session_events.name, "-s", "value=avro",
             "-r", srv.url, "-e", "-o", "beginning", "-q"],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    mine = [e for e in events if e["session_id"] == session_id]
    assert len(mine) == 4, done.stdout[:2000]  # started, 2 steps, completed
    payloads = [branch(e["payload"]) for e in mine]
    steps = [p for name, p in payloads if name == "StepRecorded"]
    assert [s["step_number"] for s in steps] == [0, 1]
    assert steps[0]["observation"] == "obs 7/0" and steps[0]["tool_result"] == {"string": "out 0"}
    assert branch(steps[0]["action"]) == ("UseTool", {"kind": "use_tool", "tool": "tool0", "input": "in 0"})
    assert steps[0]["step_metadata"] == {"agent": "7", "i": "0"} and steps[0]["tokens"] == 100


def _zigzag(n: int) -> bytes:
    n, out = (n << 1) ^ (n >> 63), bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes([*out, n])


def _container(schema: str, bodies: list[bytes]) -> bytes:
    """An Avro object container around the exact message bodies (no re-encoding)."""
    def text(b: bytes) -> bytes:
        return _zigzag(len(b)) + b

    sync = os.urandom(16)
    meta = _zigzag(2) + text(b"avro.schema") + text(schema.encode()) + text(b"avro.codec") + text(b"null") + _zigzag(0)
    data = b"".join(bodies)
    return b"Obj\x01" + meta + sync + _zigzag(len(bodies)) + _zigzag(len(data)) + data + sync


@pytest.mark.skipif(shutil.which("avrocat") is None, reason="avro-c tools not installed (apt-get install avro-bin)")
def test_avro_c_decodes_every_record_we_publish(tmp_path: Path) -> None:
    codec = Codec(LocalRegistry())
    bodies: dict[str, list[bytes]] = defaultdict(list)
    for record in samples():
        bodies[record.avro_name].append(codec.encode("t", record)[HEADER.size:])
    assert set(bodies) == set(SCHEMA_FILES)
    decoded: dict[str, list[dict[str, Any]]] = {}
    for name, items in bodies.items():
        path = tmp_path / f"{name}.avro"
        path.write_bytes(_container(schema_text(name), items))
        done = subprocess.run(["avrocat", str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        decoded[name] = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(decoded[name]) == len(items)
    events = decoded["art.SessionEvent"]
    assert [branch(e["payload"])[0] for e in events] == ["SessionStarted", "StepRecorded", "StepRecorded",
                                                         "StepRecorded", "SessionCompleted"]
    step = branch(events[1]["payload"])[1]
    assert branch(step["action"]) == ("UseTool", {"kind": "use_tool", "tool": "calculator", "input": "2+2"})
    assert step["step_reward"] == {"double": 0.5} and step["timestamp"] == 1795608000123456  # timestamp-micros
    assert events[0]["event_id"] == "12345678-1234-5678-1234-567812345678"  # uuid logical type
    trajectory = decoded["art.TrajectoryCompleted"][0]
    assert branch(trajectory["steps"][0]["step"]["action"])[0] == "UseTool"  # named type reused across records
    assert decoded["art.RewardAssigned"][0]["group_size"] == 4
