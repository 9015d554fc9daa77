"""Stable addresses: the ports of the embedded stack, chosen once and kept under <data_dir>/run.

Agents and tools keep connections to the broker and the ClickHouse gateway; when `art up` is started
again after a crash they must find it where it was. The first start picks free ports and writes them
to ``ports.json``; every later start reuses them, and refuses with a clear error when another
process holds one.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from pathlib import Path

from stack.broker import free_port


class PortTaken(RuntimeError):
    """A kept port is held by another process."""


def ports_file(data_dir: Path) -> Path:
    return data_dir / "run" / "ports.json"


def kept_ports(data_dir: Path, names: list[str]) -> dict[str, int]:
    """The port of every name: the kept one, or a new free one (then kept)."""
    path = ports_file(data_dir)
    try:
        kept = {k: int(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        kept = {}
    missing = [n for n in names if n not in kept]
    if missing:
        for name in missing:
            kept[name] = free_port()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept, indent=1, sort_keys=True))
    return {n: kept[n] for n in names}


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind (TIME_WAIT is fine)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def ensure_free(data_dir: Path, ports: dict[str, int], wait_s: float = 5.0) -> None:
    """Wait up to ``wait_s`` for every port to be free (a killed stack's children may still be going)."""
    deadline = time.monotonic() + wait_s
    while True:
        taken = {name: port for name, port in ports.items() if not _bindable(port)}
        if not taken:
            return
        if time.monotonic() >= deadline:
            name, port = next(iter(taken.items()))
            raise PortTaken(f"port {port} of the {name}, kept in {ports_file(data_dir)} so that clients find the "
                            f"stack again after a restart, is used by another process: stop it, or delete that "
                            f"file to pick new ports")
        time.sleep(0.2)
