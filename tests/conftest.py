"""Session-scoped real parts: one Tansu broker and one chDB directory for the whole run.

chDB allows one engine path per process, so tests share the directory and isolate themselves by
ClickHouse database; they share the broker and isolate themselves by topic prefix.
ART_TEST_BACKEND=containers backs the same fixtures by testcontainers (Kafka + ClickHouse server);
without Docker those runs skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.topics import Topics
from stack.broker import EmbeddedBroker, ensure_topics
from store.clickhouse import connect, ensure_schema

BACKEND = os.environ.get("ART_TEST_BACKEND", "embedded")


def _docker_available() -> str | None:
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine reachable ({exc.__class__.__name__})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-model tests take minutes of CPU: they run only when asked (``art bench loop`` asks)."""
    if os.environ.get("ART_REAL_MODEL_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="real-model test: set ART_REAL_MODEL_TESTS=1 (`art bench loop` runs it)")
    for item in items:
        if "realmodel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "containers":
        reason = _docker_available()
        if reason:
            pytest.skip(f"ART_TEST_BACKEND=containers but {reason}")
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "containers":
        reason = _docker_available()
        if reason:
            pytest.skip(f"ART_TEST_BACKEND=containers but {reason}")
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer() as ch:
            yield f"http://{ch.username}:{ch.password}@{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
        return
    yield f"chdb://{tmp_path_factory.mktemp('chdb') / 'clickhouse'}"


@pytest.fixture
def database(clickhouse_dsn: str) -> str:
    """A fresh ClickHouse database with every table, unique to the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_schema(connect(clickhouse_dsn, name))
    return name


@pytest.fixture
def store(clickhouse_dsn: str, database: str):  # type: ignore[no-untyped-def]
    return connect(clickhouse_dsn, database)


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    """Topics under a unique prefix, created with their partition counts."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:8]}.", session_partitions=4)
    ensure_topics(kafka_bootstrap, t.all())
    return t


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hidden 128, 2 layers, byte-level BPE with a {% generation %} chat template (TRAINER.md size)."""
    pytest.importorskip("torch")
    from trainer.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "art-data"
