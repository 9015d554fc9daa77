"""The running stack's address card and store watermark, written by `art up`, read by clients.

The card is how agents, the CLI and the trainer find the embedded broker and the ClickHouse
gateway, and how the tracking SDK learns that the embedded broker lost its log (``log_epoch``
changes; a child restart rewrites the card with the same epoch). The watermark says, per topic and
partition and per log epoch, up to which offset the store has every record: on the embedded broker
(memory only) an event is durable only then (``durable = "store"``).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from config.settings import ArtConfig


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
    ui_url: str = ""  # the read-only web UI (`art ui`), when `art up` serves it
    durable: Literal["broker", "store"] = "broker"  # when an acknowledged event is safe: broker ack or watermark


class Watermark(BaseModel):
    """What one sink has committed (after ClickHouse had the rows) in one log epoch."""

    log_epoch: int
    offsets: dict[str, dict[int, int]]  # topic -> partition -> next offset not yet stored


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; a race with another binder is possible)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stack_file(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_stack_info(data_dir: Path, info: StackInfo) -> None:
    _write_atomically(stack_file(data_dir), info.model_dump_json(indent=1))


def watermark_dir(data_dir: Path) -> Path:
    return data_dir / "run" / "watermarks"


def write_watermark(data_dir: Path, name: str, mark: Watermark) -> None:
    _write_atomically(watermark_dir(data_dir) / f"{name}.json", mark.model_dump_json())


def read_watermark(data_dir: Path, log_epoch: int, topic: str) -> dict[int, int]:
    """Per partition, the offset below which the store has every record of ``topic`` in ``log_epoch``
    (the highest any sink committed)."""
    out: dict[int, int] = {}
    for path in watermark_dir(data_dir).glob("*.json"):
        try:
            mark = Watermark.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            continue  # replaced or removed while we read
        if mark.log_epoch == log_epoch:
            for partition, offset in mark.offsets.get(topic, {}).items():
                out[partition] = max(out.get(partition, 0), offset)
    return out


def clear_watermarks(data_dir: Path) -> None:
    """Forget every watermark: called before a new log epoch begins, so none of an older log is read."""
    for path in watermark_dir(data_dir).glob("*.json"):
        path.unlink(missing_ok=True)


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
