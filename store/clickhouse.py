"""ClickHouse clients from a DSN, and the DDL applied idempotently on start.

``chdb:///dir`` opens the in-process engine (one process per directory); ``http(s)://`` reaches a
server, or the gateway that ``art up`` serves over its chDB directory, with the same client API.

Two ways in: ``writer`` (the sink, worker, trainer, replay, patterns: with the running stack's
writer secret) and ``reader`` (`art sql`, `stats`, `report`, pattern lookups: read-only, decided by
ClickHouse, and never creating anything).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from config.settings import ArtConfig
from schemas.runtime import clickhouse_dsn_for
from store import secret as writer_secret

DDL_DIR = Path(__file__).parent / "ddl"


class StoreError(Exception):
    """ClickHouse could not be reached or refused a statement."""


class StoreMissing(StoreError):
    """There is no store where the configuration points (readers never create one)."""


def connect(dsn: str, database: str | None = None, *, secret: str | None = None, **settings: Any) -> Client:
    """A client for ``dsn``; creates ``database`` first when it does not exist yet. ``secret`` is
    the gateway's writer secret (without it the gateway serves reads only)."""
    scheme = urlparse(dsn).scheme
    if scheme not in ("chdb", "http", "https", "clickhouse", "clickhouses"):
        raise StoreError(f"unsupported ClickHouse DSN {dsn!r}: use chdb:///<dir> or http(s)://host:port")
    extra: dict[str, Any] = {} if scheme == "chdb" else {"compress": False, "connect_timeout": 5,
                                                         "send_receive_timeout": 120}
    if secret and scheme != "chdb":
        extra |= {"username": writer_secret.WRITER_USER, "password": secret}
    if scheme == "chdb":
        Path(urlparse(dsn).path).mkdir(parents=True, exist_ok=True)
    try:
        if database:
            bootstrap = clickhouse_connect.get_client(dsn=dsn, **extra)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            if scheme != "chdb":
                bootstrap.close()
        return clickhouse_connect.get_client(dsn=dsn, database=database, settings=settings or None, **extra)
    except Exception as exc:  # clickhouse-connect raises several unrelated types here
        raise StoreError(f"cannot open ClickHouse at {dsn}: {exc}") from exc


def writer(cfg: ArtConfig, dsn: str | None = None) -> Client:
    """A writing client: on the running stack's gateway with its writer secret, else on ``dsn``
    (default: where the configuration points) as it is."""
    dsn = dsn or clickhouse_dsn_for(cfg)
    return connect(dsn, cfg.clickhouse.database, secret=writer_secret.secret_for(cfg.storage.data_dir, dsn))


@contextmanager
def reader(cfg: ArtConfig) -> Iterator[Client]:
    """A read-only client, the same path with and without a running stack.

    With a stack: its gateway, without credentials (the gateway's reader sessions). Without one:
    a readers-only gateway of this process over the directory, gone on exit; a directory holding
    no store is refused before anything opens it. A ClickHouse server gets ``readonly = 1`` on
    every query and enforces it itself.
    """
    dsn = clickhouse_dsn_for(cfg)
    database = cfg.clickhouse.database
    gateway = None
    if dsn.startswith("chdb://"):
        from store.gateway import ChdbGateway

        path = Path(urlparse(dsn).path)
        if not (path / "metadata").is_dir():
            raise StoreMissing(f"no store in {path}: start one with `art up` (or `art demo`)")
        try:
            gateway = ChdbGateway(str(path), reader_timeout_s=cfg.clickhouse.reader_timeout_s, readers=1).start()
        except Exception as exc:  # locked by another process, or another engine path in this one
            raise StoreError(f"cannot open ClickHouse at {path}: {exc}") from exc
        dsn = gateway.url
    try:
        try:
            ours = cfg.clickhouse_dsn().startswith("chdb://")  # our gateway decides; a server is told
            client = clickhouse_connect.get_client(dsn=dsn, compress=False, connect_timeout=5,
                                                   send_receive_timeout=120, settings=None if ours else {"readonly": 1})
            found = client.command("SELECT count() FROM system.databases WHERE name = {db:String}",
                                   parameters={"db": database})
        except Exception as exc:
            raise StoreError(f"cannot open ClickHouse at {dsn}: {exc}") from exc
        if not found:
            raise StoreMissing(f"no store at {dsn}: database {database!r} does not exist "
                               "(start one with `art up` or `art demo`)")
        client.database = database
        yield client
    finally:
        if gateway is not None:
            gateway.stop()


_GUARD_SCOPE = re.compile(r"(?s):? In scope SELECT formatQuery\(.*?\)\.(?= \(\w+\)|$)")


def error_text(exc: BaseException) -> str:
    """ClickHouse's own words for a failure, on one line: no client wrapper, no URL."""
    text = str(exc)
    start = text.find("Code: ")
    text = text[start:] if start >= 0 and not isinstance(exc, StoreError) else text
    end = text.rfind(" (for url ")
    text = text[:end] if end >= 0 else text
    text = _GUARD_SCOPE.sub(".", text)  # the reader guard's formatQuery wrapper is ours, not the user's SQL
    return " ".join(text.split()) or exc.__class__.__name__


def literal(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ddl_statements() -> list[str]:
    """Every statement of every .sql file, in file order."""
    out: list[str] = []
    for path in sorted(DDL_DIR.glob("*.sql")):
        text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("--"))
        out.extend(s.strip() for s in text.split(";") if s.strip())
    return out


def ensure_schema(client: Client) -> None:
    """Create tables and views; safe to run on every start."""
    for statement in ddl_statements():
        client.command(statement)
