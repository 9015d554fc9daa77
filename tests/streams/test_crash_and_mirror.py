"""A worker never lives on with a dead agent, and its mirror lookups never share a client across threads."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.poison import good_session
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.crash import EXIT_CODE
from streams.mirror import Mirror

ROOT = Path(__file__).resolve().parents[2]


def test_an_exception_escaping_an_agent_takes_the_process_down() -> None:
    code = ("import asyncio\nfrom streams.crash import guarded\n"
            "async def body():\n    raise OverflowError('date value out of range')\n"
            "asyncio.run(guarded('the sessions agent', body))\nprint('still alive')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == EXIT_CODE and "still alive" not in out.stdout
    assert "the sessions agent crashed; exiting so that the supervisor restarts this worker" in out.stderr
    assert "OverflowError: date value out of range" in out.stderr


def test_mirror_lookups_from_many_threads_each_use_their_own_client(clickhouse_dsn: str, database: str) -> None:
    from store.clickhouse import connect
    from store.gateway import ChdbGateway

    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the gateway serves a chDB directory")
    gateway = ChdbGateway(clickhouse_dsn[len("chdb://"):], secret="mirror-test").start()
    try:
        codec = Codec(LocalRegistry())
        events = good_session("mirrored", 30)
        writer = connect(gateway.url, database, secret="mirror-test")
        writer.insert("session_events", [[e.session_id, e.seq, e.event_id, e.payload.kind, e.agent_name, e.ts,
                                          codec.encode("t", e), 0, "t", 0, e.seq] for e in events],
                      column_names=["session_id", "seq", "event_id", "kind", "agent_name", "ts", "payload",
                                    "log_epoch", "topic", "partition", "offset"])
        clients: dict[int, Any] = {}

        def connect_once() -> Any:
            client = connect(gateway.url, database, secret="mirror-test")
            clients[threading.get_ident()] = client
            return client

        mirror = Mirror(connect_once, codec)
        with ThreadPoolExecutor(8) as pool:  # concurrent queries on one client are refused by the client
            results = list(pool.map(lambda n: mirror.events("mirrored", from_seq=n % 5), range(200)))
        assert [len(r) for r in results] == [32 - n % 5 for n in range(200)]
        assert results[0][3].event == events[3] and results[0][3].origin.offset == 3
        assert 1 < len(clients) <= 8 and len({id(c) for c in clients.values()}) == len(clients)
    finally:
        gateway.stop(close_engine=False)
