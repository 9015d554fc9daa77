"""The embedded stack: clean start/stop, no orphans after kill -9, idempotent DDL, live session view."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from agents.tracking import Tracker
from schemas.models import UseTool
from stack.broker import free_port
from store.clickhouse import connect, ddl_statements, ensure_schema
from tests.ingest.helpers import wait_for
from tests.ingest.stack import RunningStack


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def get_json(url: str) -> dict | None:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None  # the worker's web server is still starting
    return response.json() if response.status_code == 200 else None


@pytest.mark.slow
def test_up_serves_live_session_state_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    with RunningStack(tmp_path / "data", env={"ART_STREAM_WEB_PORT": str(port)}) as stack:
        children = dict(stack.info.children)
        assert set(children) == {"worker-0", "sink-0", "broker"}
        check_live_view(stack, port)
        assert stack.stop() == 0
    for name, pid in children.items():
        assert not alive(pid), f"{name} (pid {pid}) still running after art up stopped"
    assert not (tmp_path / "data" / "run" / "stack.json").exists()


def check_live_view(stack: RunningStack, port: int) -> None:
    async def open_session() -> str:
        async with Tracker.from_config(stack.cfg) as tracker:
            session = await tracker.start_session(agent_name="viewer", objective="look at me", group_id="g1")
            await session.record_step(observation="o", thought="t", action=UseTool(tool="calc", input="1+1"), tokens=9)
            return session.session_id

    sid = asyncio.run(open_session())
    url = f"http://127.0.0.1:{port}/sessions/{sid}"
    body = wait_for(lambda: get_json(url), timeout_s=60)
    assert (body["next_seq"], body["step_count"], body["total_tokens"], body["ready"]) == (2, 1, 9, False)
    assert body["started"]["objective"] == "look at me" and body["tools_used"] == ["calc"]
    missing = httpx.get(f"http://127.0.0.1:{port}/sessions/nope", timeout=5)
    assert missing.status_code == 404 and "not held by this worker" in missing.json()["error"]


def test_broker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    script = ("import time, sys\nfrom stack.broker import EmbeddedBroker\nb = EmbeddedBroker().start()\n"
              "print(b.proc.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    assert alive(broker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(broker_pid)


def test_ddl_applies_idempotently(clickhouse_dsn: str, database: str) -> None:
    client = connect(clickhouse_dsn, database)
    ensure_schema(client)  # the fixture applied it once already
    ensure_schema(client)
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert {"session_events", "steps", "trajectories", "judgments", "rewards", "dead_letters", "models"} <= tables
    engines = dict(client.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
                   .result_rows)
    assert engines["steps"] == "ReplacingMergeTree" and engines["rewards"] == "ReplacingMergeTree"
    assert all(s.startswith(("CREATE TABLE IF NOT EXISTS", "CREATE OR REPLACE VIEW", "CREATE VIEW IF NOT EXISTS"))
               or (s.startswith("ALTER TABLE") and " ADD COLUMN IF NOT EXISTS" in s) for s in ddl_statements())


def test_ddl_adds_columns_to_a_store_created_before_them(clickhouse_dsn: str) -> None:
    client = connect(clickhouse_dsn, f"t_{uuid.uuid4().hex[:12]}")
    steps = next(s for s in ddl_statements() if s.startswith("CREATE TABLE IF NOT EXISTS steps"))
    older = "\n".join(line for line in steps.splitlines() if not line.strip().startswith("completions "))
    client.command(older)  # the steps table as it was before StepRecorded.completions
    ensure_schema(client)
    columns = [r[0] for r in client.query("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                          "AND table = 'steps' ORDER BY position").result_rows]
    assert columns[columns.index("cost") + 1] == "completions"
