"""`art up` as a subprocess with its own data directory, as a user runs it: for tests and benchmarks
that kill it (``kill -9`` of the whole stack) and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import ArtConfig, load_config
from schemas.runtime import StackInfo, read_stack_info
from stack import processes
from store.clickhouse import writer


class StackProcess:
    """`art up` in a subprocess over ``data_dir`` (which the kernel kills if this process dies)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "ART_STORAGE_DATA_DIR": str(data_dir), "ART_STREAM_SWEEP_INTERVAL_S": "0.5",
                    **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "up.log"

    @property
    def cfg(self) -> ArtConfig:
        return load_config(environ={k: v for k, v in self.env.items() if k.startswith("ART_")})

    def start(self, timeout_s: float = 60.0) -> StackInfo:
        """Start it and wait for its address card. Call from a thread that outlives the stack (the main
        thread): the kernel's parent-death signal follows the thread that started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # dies with the test process, so an interrupted run leaves no stack behind
        self.proc = subprocess.Popen([sys.executable, "-m", "stack", "up", *self.args], env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                     cwd=self.data_dir.parent, preexec_fn=processes._die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = read_stack_info(self.data_dir)
            if info is not None and info.pid == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(f"art up exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"art up did not publish its stack file within {timeout_s} s")

    @property
    def info(self) -> StackInfo:
        info = read_stack_info(self.data_dir)
        assert info is not None, "stack is not running"
        return info

    def client(self) -> Any:
        return writer(self.cfg, self.info.clickhouse_url)

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        """kill -9 the whole stack (its children die with it)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> StackProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
