"""`art up`: the broker, the ClickHouse gateway, stream workers and sinks as one supervised stack.

Children are restarted when they die. The embedded broker forgets everything when it restarts,
so a broker restart bumps the log epoch, recreates the topics and restarts every worker and sink
(live consumers would otherwise keep stale positions and silently miss data, docs/broker.md).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from schemas.runtime import StackInfo, stack_file, write_stack_info
from schemas.settings import ArtConfig
from stack import processes
from stack.broker import EmbeddedBroker, ensure_topics, free_port
from stack.registry_server import RegistryServer
from store.clickhouse import connect, ensure_schema
from store.gateway import ChdbGateway
from store.secret import secret_file

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failed_at: float | None = None
    follows_broker: bool = True  # restarted with a restarted broker; capture servers ride it out (their SDK re-sends)


@dataclass
class Stack:
    cfg: ArtConfig
    config_path: Path | None = None
    workers: int = 1
    sinks: int = 1
    broker: EmbeddedBroker | None = None
    gateway: ChdbGateway | None = None
    children: list[Child] = field(default_factory=list)
    log_epoch: int = 0
    bootstrap: str = ""
    clickhouse_url: str = ""
    registry: RegistryServer | None = None
    proxy_url: str = ""
    otlp_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.cfg.storage.data_dir

    def start(self) -> StackInfo:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.cfg.kafka.bootstrap:
            self.bootstrap = self.cfg.kafka.bootstrap
        else:
            self.broker = EmbeddedBroker(log_path=self.data_dir / "logs" / "broker.log").start()
            self.bootstrap = self.broker.bootstrap
        self.log_epoch = int(time.time() * 1000) if self.broker else 0
        ensure_topics(self.bootstrap, self.cfg.kafka.topics().all() + self.cfg.kafka.topics().internal())
        dsn = self.cfg.clickhouse_dsn()
        if dsn.startswith("chdb://"):
            self.gateway = ChdbGateway(dsn[len("chdb://"):], card=secret_file(self.data_dir),  # writers' secret
                                       reader_timeout_s=self.cfg.clickhouse.reader_timeout_s).start()
            self.clickhouse_url = self.gateway.url
        else:
            self.clickhouse_url = dsn
        ensure_schema(connect(self.clickhouse_url, self.cfg.clickhouse.database,
                              secret=self.gateway.secret if self.gateway else None))
        if not self.cfg.kafka.schema_registry_url:  # serve the local registry so kcat & co can decode
            self.registry = RegistryServer(self.data_dir / "registry.json").start()
        self._build_children()
        for child in self.children:
            self._spawn(child)
        return self._publish()

    def _publish(self) -> StackInfo:
        info = StackInfo(pid=os.getpid(), bootstrap=self.bootstrap, clickhouse_url=self.clickhouse_url,
                         log_epoch=self.log_epoch, topic_prefix=self.cfg.kafka.topic_prefix, started_at=time.time(),
                         schema_registry_url=self.registry.url if self.registry else self.cfg.kafka.schema_registry_url,
                         proxy_url=self.proxy_url, otlp_url=self.otlp_url,
                         children={c.name: c.proc.pid for c in self.children if c.proc}
                         | ({"broker": self.broker.proc.pid} if self.broker and self.broker.proc else {}))
        write_stack_info(self.data_dir, info)
        return info

    def _build_children(self) -> None:
        common = ["--bootstrap", self.bootstrap, "--clickhouse", self.clickhouse_url]
        if self.config_path:
            common += ["--config", str(self.config_path)]
        web = self.cfg.stream.web_port
        self.children = [Child(f"worker-{i}", [sys.executable, "-m", "streams.worker", *common,
                                               "--web-port", str(web + i if web else 0)])
                         for i in range(self.workers)]
        self.children += [Child(f"sink-{i}", [sys.executable, "-m", "consumers.run", *common])
                          for i in range(self.sinks)]
        self.children += self._capture_children()

    def _capture_children(self) -> list[Child]:
        """The recording proxy and the OTLP receiver, when enabled (agents/capture)."""
        capture = self.cfg.capture
        common = ["--bootstrap", self.bootstrap, "--host", capture.host]
        common += ["--epoch-file", str(stack_file(self.data_dir).resolve())] if self.broker else []
        common += ["--config", str(self.config_path)] if self.config_path else []
        shown = "127.0.0.1" if capture.host in ("0.0.0.0", "::") else capture.host
        children = []
        if capture.proxy_upstream:
            port = capture.proxy_port or free_port()
            self.proxy_url = f"http://{shown}:{port}/v1"
            children.append(Child("proxy", [sys.executable, "-m", "agents.capture.run", "proxy", "--port", str(port),
                                            "--upstream", capture.proxy_upstream, *common], follows_broker=False))
        if capture.otlp_enabled:
            port = capture.otlp_port or free_port()
            self.otlp_url = f"http://{shown}:{port}"
            children.append(Child("otlp", [sys.executable, "-m", "agents.capture.run", "otlp", "--port", str(port),
                                           *common], follows_broker=False))
        return children

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, "ART_LOG_EPOCH": str(self.log_epoch),
               "ART_STORAGE_DATA_DIR": str(self.data_dir.resolve())}
        child.proc = processes.spawn(child.argv, log_path=self.data_dir / "logs" / f"{child.name}.log", env=env)
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def check(self) -> None:
        """One supervision pass: restart a dead broker (and everything with it) or dead children."""
        if self.broker is not None and not self.broker.alive():
            log.warning("broker died: restarting it with a new log epoch, topics and consumers")
            for child in self.children:
                if child.proc is not None and child.follows_broker:
                    processes.stop(child.proc, grace_s=0.0)  # Faust hangs on SIGTERM after a broker restart
            self.broker.start()
            self.log_epoch = int(time.time() * 1000)
            ensure_topics(self.bootstrap, self.cfg.kafka.topics().all() + self.cfg.kafka.topics().internal())
            for child in self.children:
                if child.follows_broker:
                    child.restarts += 1
                    self._spawn(child)
            self._publish()
            return
        restarted = False
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                if child.failed_at is None:
                    child.failed_at = time.monotonic()
                    log.warning("%s exited with %s: restarting", child.name, child.proc.returncode)
                if time.monotonic() - child.failed_at < min(30.0, 0.5 * 2 ** min(child.restarts, 6)) - 0.5:
                    continue  # crash loop: back off before the next start
                child.restarts += 1
                child.failed_at = None
                self._spawn(child)
                restarted = True
        if restarted:
            self._publish()

    def stop(self) -> None:
        for child in self.children:  # capture first: what it completes on the way out still reaches the stream
            if child.proc is not None and not child.follows_broker:
                processes.stop(child.proc, grace_s=15.0)
        for child in self.children:
            if child.proc is not None and child.name.startswith("worker"):
                processes.stop(child.proc, grace_s=15.0)
        for child in self.children:
            if child.proc is not None:
                processes.stop(child.proc, grace_s=15.0)
        if self.broker is not None:
            self.broker.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.registry is not None:
            self.registry.stop()
        stack_file(self.data_dir).unlink(missing_ok=True)
