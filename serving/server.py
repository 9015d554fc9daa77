"""Engine + registry watch + HTTP app, started and stopped as one unit.

``Server.run()`` serves in the foreground (the CLI); ``Server.start()`` serves on a background
thread and returns once the socket accepts (tests and benchmarks). A new champion is preloaded as
soon as the watch sees it, so the first request after a promotion does not pay the load.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from clickhouse_connect.driver.client import Client

from serving.catalog import RegistryWatch, Target
from serving.engine import Engine
from trainer.registry import ModelRecord


class Server:
    def __init__(self, engine: Engine, fetch: Callable[[], list[ModelRecord]], base_dir: Path, *,
                 host: str = "127.0.0.1", port: int = 0, poll_interval_s: float = 1.0,
                 default_max_tokens: int = 512) -> None:
        import uvicorn

        from serving.app import create_app

        self.engine = engine
        self.watch = RegistryWatch(fetch, base_dir, interval_s=poll_interval_s, on_champion=self._preload)
        self.app = create_app(engine, self.watch, default_max_tokens=default_max_tokens)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                     timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def _preload(self, target: Target) -> None:
        if target.adapter is not None:
            self.engine.preload(target.adapter)

    def _open(self) -> None:
        self.engine.start()
        self.watch.start()

    def _close(self) -> None:
        self.watch.stop()
        self.engine.stop()
        self.sock.close()

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn installs the handlers)."""
        self._open()
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self._close()

    def start(self, timeout_s: float = 30.0) -> Server:
        self._open()
        self._thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.sock]},
                                        name="serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def registry_fetch(client: Client) -> Callable[[], list[ModelRecord]]:
    """The registry poll over one ClickHouse client (serialised: clients are not thread-safe)."""
    from trainer.registry import list_models

    lock = threading.Lock()

    def fetch() -> list[ModelRecord]:
        with lock:
            return list_models(client)

    return fetch
