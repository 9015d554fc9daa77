"""ClickHouse clients from a DSN, and the DDL applied idempotently on start.

``chdb:///dir`` opens the in-process engine (one process per directory); ``http(s)://`` reaches a
server, or the gateway that ``art up`` serves over its chDB directory, with the same client API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DDL_DIR = Path(__file__).parent / "ddl"


class StoreError(Exception):
    """ClickHouse could not be reached or refused a statement."""


def connect(dsn: str, database: str | None = None, **settings: Any) -> Client:
    """A client for ``dsn``; creates ``database`` first when it does not exist yet."""
    scheme = urlparse(dsn).scheme
    if scheme not in ("chdb", "http", "https", "clickhouse", "clickhouses"):
        raise StoreError(f"unsupported ClickHouse DSN {dsn!r}: use chdb:///<dir> or http(s)://host:port")
    extra: dict[str, Any] = {} if scheme == "chdb" else {"compress": False, "connect_timeout": 5,
                                                         "send_receive_timeout": 120}
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
