"""Fixtures of the store's security tests: one `art up` for the package, an offline store and a
listening port that must never be reached."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.clickhouse import connect, ensure_schema
from tests.ingest.stack import RunningStack
from tests.store.support import READER_TIMEOUT_S, Listener, Target, cli_env, seed


@pytest.fixture(scope="package")
def listener() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.sock.close()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One `art up` for every test of the package (reader time limit: READER_TIMEOUT_S)."""
    root = tmp_path_factory.mktemp("attacked")
    with RunningStack(root / "data", env={"ART_CLICKHOUSE_READER_TIMEOUT_S": READER_TIMEOUT_S}) as running:
        seed(running.client())
        yield running


@pytest.fixture(scope="package")
def live(stack: RunningStack) -> Target:
    return Target("live", "art", stack.client(), cli_env(stack.data_dir, "art"))


@pytest.fixture(scope="package")
def offline(clickhouse_dsn: str) -> Target:
    """The store opened by `art sql` itself: chDB hosts one engine path per process, so it is the
    test session's directory (under its own database) and the command's reader sessions sit on it."""
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("`art sql` without a stack opens a chDB directory")
    db = f"attacked_{uuid.uuid4().hex[:8]}"
    admin = connect(clickhouse_dsn, db)
    ensure_schema(admin)
    seed(admin)
    return Target("offline", db, admin, cli_env(Path(clickhouse_dsn[len("chdb://"):]).parent, db))
