"""Serving fixtures: the real HTTP server over the tiny model, its registry in chDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")

from store.clickhouse import connect, ensure_schema


@pytest.fixture(scope="module")
def registry_db(clickhouse_dsn: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_schema(connect(clickhouse_dsn, name))
    return name


@pytest.fixture(scope="module")
def registry_store(clickhouse_dsn: str, registry_db: str) -> Any:
    return connect(clickhouse_dsn, registry_db)


@pytest.fixture(scope="module")
def server(tiny_model: Path, clickhouse_dsn: str, registry_db: str) -> Iterator[Any]:
    """`art serve` in-process: the engine over the tiny model, the registry polled every 0.2 s."""
    from serving.engine import Engine
    from serving.server import Server, registry_fetch

    reader = connect(clickhouse_dsn, registry_db, readonly=1)
    engine = Engine.load(tiny_model, max_batch=8)
    with Server(engine, registry_fetch(reader), tiny_model, poll_interval_s=0.2, default_max_tokens=24) as s:
        yield s
