"""The running stack's address card, written by `art up` and read by every client process.

It is how agents, the CLI and the trainer find the embedded broker and the ClickHouse gateway,
and how the tracking SDK learns that the embedded broker restarted (``log_epoch`` changes).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from pydantic import BaseModel

from schemas.settings import ArtConfig


class StackInfo(BaseModel):
    pid: int
    bootstrap: str
    clickhouse_url: str
    log_epoch: int
    topic_prefix: str
    started_at: float
    children: dict[str, int] = {}
    schema_registry_url: str = ""  # Confluent-compatible REST endpoint (the embedded one, or the configured one)
    proxy_url: str = ""  # the recording proxy's OpenAI-compatible base URL (…/v1), when `art up` runs one
    otlp_url: str = ""  # the OTLP/HTTP receiver's base URL (traces at …/v1/traces), when `art up` runs one


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; a race with another binder is possible)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stack_file(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def write_stack_info(data_dir: Path, info: StackInfo) -> None:
    path = stack_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json(indent=1))
    tmp.replace(path)


def read_stack_info(data_dir: Path) -> StackInfo | None:
    """The live stack's card, or None when no stack runs (missing file or dead pid)."""
    path = stack_file(data_dir)
    try:
        info = StackInfo.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def clickhouse_dsn_for(cfg: ArtConfig) -> str:
    """Where a client process reaches ClickHouse: the running stack's gateway when ``art up``
    owns the chDB directory (one process per directory), else the configured DSN."""
    dsn = cfg.clickhouse_dsn()
    if dsn.startswith("chdb://"):
        info = read_stack_info(cfg.storage.data_dir)
        if info is not None:
            return info.clickhouse_url
    return dsn
