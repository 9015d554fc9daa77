"""Helpers of the store's security tests: a port that must never be reached, the stores under
attack, and the ways a reader reaches them (`art sql` in this process, the gateway's HTTP port)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from stack.cli import build_app
from store.secret import WRITER_USER, load, secret_file
from tests.ingest.stack import RunningStack

READER_TIMEOUT_S = "2"
SEED_TRAJECTORIES = 3


class Listener:
    """A TCP port that records every connection made to it (url, s3, remote, mysql, postgresql …)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


@dataclass
class Target:
    """One store under attack: its database, a privileged client for snapshots, a CLI environment."""

    name: str
    db: str
    admin: Any
    env: dict[str, str]

    def snapshot(self) -> list[tuple[Any, ...]]:
        """The attacked database's tables, engines and row counts, every database's name.

        Other tests' databases in the same engine are listed by name only: their rows are theirs to change.
        """
        return self.admin.query(
            "SELECT * FROM (SELECT database, name, engine, total_rows FROM system.tables WHERE database = "
            "{db:String} UNION ALL SELECT name, '', '', NULL FROM system.databases) ORDER BY 1, 2",
            parameters={"db": self.db}).result_rows


def seed(client: Any) -> None:
    client.insert("trajectories", [[f"seed-{i}", "objective", "succeeded"] for i in range(SEED_TRAJECTORIES)],
                  column_names=["session_id", "objective", "status"])
    client.insert("steps", [[f"seed-{i}", 1] for i in range(SEED_TRAJECTORIES)], column_names=["session_id", "seq"])


def cli_env(data_dir: Path, db: str) -> dict[str, str]:
    return {"ART_STORAGE_DATA_DIR": str(data_dir), "ART_CLICKHOUSE_READER_TIMEOUT_S": READER_TIMEOUT_S,
            "ART_CLICKHOUSE_DSN": "", "ART_CLICKHOUSE_DATABASE": db}


def art_sql(env: dict[str, str], *extra: str) -> Callable[[str], tuple[bool, str]]:
    """`art sql` in this process (CliRunner): (succeeded, output)."""
    app = build_app()

    def run(sql: str) -> tuple[bool, str]:
        result = CliRunner().invoke(app, ["sql", sql, "--format", "csv", *extra], env=env, catch_exceptions=False)
        return result.exit_code == 0, result.output

    return run


def http(stack: RunningStack, method: str, secret: str | None = None,
         **params: str) -> Callable[[str], tuple[bool, str]]:
    """Straight to the gateway's port: (HTTP 200, body). ``secret`` is sent as the writer's password."""
    card = load(secret_file(stack.data_dir))
    assert card is not None
    client = httpx.Client(base_url=card.url, auth=(WRITER_USER, secret) if secret else None, timeout=60)

    def run(sql: str) -> tuple[bool, str]:
        query = {"database": "art", **params} | ({"query": sql} if method == "GET" else {})
        reply = client.request(method, "/", params=query, content=sql.encode() if method == "POST" else None)
        return reply.status_code == 200, reply.text

    return run


def writer_secret(stack: RunningStack) -> str:
    card = load(secret_file(stack.data_dir))
    assert card is not None
    return card.secret
