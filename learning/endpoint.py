"""The model server the loop talks to: an `art serve` it starts, or one already running.

Why the loop asks the server instead of trusting the registry alone: a model is usable only once the
server's registry poll has seen it, and "the server hot-loads the new champion" is a claim to check,
so both are read back from ``GET /v1/models`` (each card's ``root`` is the model id a name answers
with).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from learning.errors import LearningError
from schemas.runtime import free_port
from stack.processes import spawn


def served_names(base_url: str, timeout_s: float = 10.0) -> dict[str, str]:
    """{name: model id it answers with} from ``GET /v1/models``."""
    response = httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout_s, trust_env=False)
    response.raise_for_status()
    return {card["id"]: card.get("root") or card["id"] for card in response.json()["data"]}


def wait_until(base_url: str, name: str, model_id: str, timeout_s: float) -> float:
    """Seconds until ``name`` answers with ``model_id`` (the server polls the registry)."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout_s:
        try:
            names = served_names(base_url)
            if names.get(name) == model_id:
                return time.monotonic() - started
            last = f"{name} -> {names.get(name, 'unknown')}"
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        time.sleep(0.2)
    raise LearningError(f"the server at {base_url} did not serve {model_id} as {name!r} within {timeout_s:.0f} s "
                        f"({last})")


class ServeProcess:
    """`art serve` as a child process on a free loopback port; ``base_url`` ends in ``/v1``."""

    def __init__(self, config: Path | None, log_path: Path, *, max_batch: int = 16,
                 start_timeout_s: float = 600.0) -> None:
        self.config, self.log_path, self.max_batch = config, log_path, max_batch
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        cmd = [sys.executable, "-m", "stack", "serve", "--port", str(self.port), "--max-batch", str(self.max_batch),
               "--poll-interval", "0.5"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(cmd, self.log_path, env=dict(os.environ))  # the kernel kills it if we die
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                raise LearningError(f"`art serve` exited with {self.proc.returncode}:\n{tail}")
            try:
                served_names(self.base_url, timeout_s=2.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.5)
        self.stop()
        raise LearningError(f"`art serve` did not answer within {self.start_timeout_s:.0f} s (log: {self.log_path})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
