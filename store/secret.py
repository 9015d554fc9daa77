"""The gateway's writer secret: made by `art up` for one run, readable only by its user.

Requests that carry it may write; every other request to the gateway is read-only. The file holds
the gateway address next to the secret, so a writer never offers it to any other endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

#: the user name writers present with the secret (clickhouse-connect sends it as HTTP basic auth)
WRITER_USER = "art-writer"


class WriterSecret(BaseModel):
    url: str
    secret: str


def secret_file(data_dir: Path) -> Path:
    return data_dir / "run" / "gateway-secret.json"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def publish(path: Path, url: str, secret: str) -> None:
    """Write the file with mode 0600 from its first byte (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(WriterSecret(url=url, secret=secret).model_dump_json())
    os.replace(tmp, path)


def withdraw(path: Path, secret: str) -> None:
    """Remove the file if it still holds this run's secret (a newer run may have replaced it)."""
    card = load(path)
    if card is not None and secrets.compare_digest(card.secret, secret):
        path.unlink(missing_ok=True)


def load(path: Path) -> WriterSecret | None:
    try:
        return WriterSecret.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def secret_for(data_dir: Path, dsn: str) -> str | None:
    """The writer secret when ``dsn`` is this data dir's gateway, else None."""
    card = load(secret_file(data_dir))
    if card is None or not dsn.startswith(("http://", "https://")):
        return None
    return card.secret if urlparse(card.url).netloc == urlparse(dsn).netloc else None
