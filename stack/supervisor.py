"""`art up`: the broker, the ClickHouse gateway, stream workers and sinks as one supervised stack.

Children are restarted when they die. The embedded broker forgets everything when it restarts,
so a broker restart bumps the log epoch, recreates the topics, puts back from the store what the
stream still needs (``streams.rebuild``) and restarts every worker and sink (live consumers would
otherwise keep stale positions and silently miss data, docs/broker.md). A start after the whole
stack died is the same kind of loss. Addresses are kept across restarts (``stack.ports``), so
clients reconnect by themselves; on the embedded broker the sinks publish a store watermark that
tells SDKs when an event is durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import ArtConfig
from schemas.runtime import StackInfo, clear_watermarks, stack_file, write_stack_info
from stack import processes
from stack.broker import EmbeddedBroker, ensure_topics, free_port
from stack.ports import ensure_free, kept_ports
from stack.registry_server import RegistryServer
from store.clickhouse import connect, ensure_schema
from store.gateway import ChdbGateway
from store.secret import secret_file
from streams.rebuild import rebuild_from_mirror

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
    ports: dict[str, int] = field(default_factory=dict)
    proxy_url: str = ""
    otlp_url: str = ""
    ui_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.cfg.storage.data_dir

    def start(self) -> StackInfo:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        dsn = self.cfg.clickhouse_dsn()
        names = ([] if self.cfg.kafka.bootstrap else ["broker"]) + (["gateway"] if dsn.startswith("chdb://") else [])
        names += [] if self.cfg.kafka.schema_registry_url else ["registry"]
        names += [] if self.cfg.stream.web_port else [f"worker-{i}-web" for i in range(self.workers)]
        self.ports = kept_ports(self.data_dir, names)
        ensure_free(self.data_dir, self.ports)
        clear_watermarks(self.data_dir)  # a new log begins: no mark of an older one may be read
        if self.cfg.kafka.bootstrap:
            self.bootstrap = self.cfg.kafka.bootstrap
        else:
            self.broker = EmbeddedBroker(port=self.ports["broker"],
                                         log_path=self.data_dir / "logs" / "broker.log").start()
            self.bootstrap = self.broker.bootstrap
        self.log_epoch = int(time.time() * 1000) if self.broker else 0
        ensure_topics(self.bootstrap, self.cfg.kafka.topics().all() + self.cfg.kafka.topics().internal(),
                      fix=self.broker is not None)
        if dsn.startswith("chdb://"):
            self.gateway = ChdbGateway(dsn[len("chdb://"):], port=self.ports["gateway"],
                                       card=secret_file(self.data_dir),  # writers' secret
                                       reader_timeout_s=self.cfg.clickhouse.reader_timeout_s).start()
            self.clickhouse_url = self.gateway.url
        else:
            self.clickhouse_url = dsn
        ensure_schema(self._client())
        if not self.cfg.kafka.schema_registry_url:  # serve the local registry so kcat & co can decode
            self.registry = RegistryServer(self.data_dir / "registry.json", port=self.ports["registry"]).start()
        if self.broker is not None:
            self._rebuild()
        self._build_children()
        for child in self.children:
            self._spawn(child)
        return self._publish()

    def _client(self) -> Any:
        return connect(self.clickhouse_url, self.cfg.clickhouse.database,
                       secret=self.gateway.secret if self.gateway else None)

    def _rebuild(self) -> None:
        """The log is new and empty: put back from the store what the stream still needs."""
        from judges import build_judge

        judge = build_judge(self.cfg)
        asyncio.run(rebuild_from_mirror(
            self._client(), self.bootstrap, self.cfg.kafka.topics(),
            judge=judge.name, judge_version=judge.version, reward_version=self.cfg.judge.reward_version,
            window_s=max(3600.0, 10 * self.cfg.judge.group_window_s)))

    def _publish(self) -> StackInfo:
        info = StackInfo(pid=os.getpid(), bootstrap=self.bootstrap, clickhouse_url=self.clickhouse_url,
                         log_epoch=self.log_epoch, topic_prefix=self.cfg.kafka.topic_prefix, started_at=time.time(),
                         schema_registry_url=self.registry.url if self.registry else self.cfg.kafka.schema_registry_url,
                         proxy_url=self.proxy_url, otlp_url=self.otlp_url, ui_url=self.ui_url,
                         children={c.name: c.proc.pid for c in self.children if c.proc}
                         | ({"broker": self.broker.proc.pid} if self.broker and self.broker.proc else {}),
                         durable="store" if self.broker is not None else "broker")
        write_stack_info(self.data_dir, info)
        return info

    def _build_children(self) -> None:
        common = ["--bootstrap", self.bootstrap, "--clickhouse", self.clickhouse_url]
        if self.config_path:
            common += ["--config", str(self.config_path)]
        web = self.cfg.stream.web_port
        self.children = [Child(f"worker-{i}", [sys.executable, "-m", "streams.worker", *common, "--web-port",
                                               str(web + i if web else self.ports[f"worker-{i}-web"])])
                         for i in range(self.workers)]
        watermark = ["--publish-watermark"] if self.broker is not None else []
        self.children += [Child(f"sink-{i}", [sys.executable, "-m", "consumers.run", *common, *watermark])
                          for i in range(self.sinks)]
        self.children += self._capture_children()
        if self.cfg.ui.enabled:  # the read-only web UI (ui/): a reader like any other, riding out broker restarts
            port = self.cfg.ui.port or free_port()
            self.ui_url = f"http://127.0.0.1:{port}"
            self.children.append(Child("ui", [sys.executable, "-m", "ui", "--port", str(port)]
                                       + (["--config", str(self.config_path)] if self.config_path else []),
                                       follows_broker=False))

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
            clear_watermarks(self.data_dir)
            self.broker.start()
            self.log_epoch = int(time.time() * 1000)
            ensure_topics(self.bootstrap, self.cfg.kafka.topics().all() + self.cfg.kafka.topics().internal(),
                          fix=True)
            self._rebuild()
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
