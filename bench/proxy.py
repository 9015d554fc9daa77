"""`art bench proxy`: what the recording proxy adds to a model call, against the same upstream
called directly in the same run.

Processes: the embedded broker, the deterministic upstream (bench/openai_upstream.py), the proxy
(`python -m agents.capture.run proxy`, the same entry `art up` spawns) and this load generator.
Latency: an open loop at ``rate`` calls/s for ``seconds``, alternating direct and proxied rounds
(``repeats`` each); added = proxied percentile - direct percentile of the same round. Throughput:
a closed loop of ``concurrency`` callers, direct then proxied. Lost: every proxied call that got a
200 must be one step event on the session-events topic (read back after the proxy stopped).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer

from schemas.codec import Codec
from schemas.models import SessionEvent, StepRecorded
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from stack import processes
from stack.broker import EmbeddedBroker, ensure_topics, free_port

Progress = Callable[[str], None]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used: per-call CPU is far steadier than latency on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait_up(session: aiohttp.ClientSession, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout_s} s")


class Load:
    def __init__(self, session: aiohttp.ClientSession, run_id: str) -> None:
        self.session = session
        self.run_id = run_id
        self.ok = 0
        self.failed = 0

    async def call(self, base: str, i: int) -> float | None:
        """One chat call; its latency in ms, None when it failed."""
        body = {"model": "scripted-1", "messages": [{"role": "user", "content": f"bench call {i} of {self.run_id}"}]}
        headers = {"Authorization": "Bearer bench-key", "X-ART-Session": f"{self.run_id}-{i % 50}",
                   "X-ART-Agent": "bench"}
        started = time.perf_counter()
        try:
            async with self.session.post(f"{base}/chat/completions", json=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    self.failed += 1
                    return None
        except aiohttp.ClientError:
            self.failed += 1
            return None
        self.ok += 1
        return (time.perf_counter() - started) * 1000

    async def open_loop(self, base: str, rate: float, seconds: float, first: int) -> tuple[list[float], float]:
        """``rate`` calls/s for ``seconds`` whatever the answers' pace; (latencies, achieved calls/s)."""
        n = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for k in range(n):
            await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(self.call(base, first + k)))
        results = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        latencies = [r for r in results if r is not None]
        return latencies, len(latencies) / elapsed

    async def closed_loop(self, base: str, concurrency: int, seconds: float, first: int) -> float:
        """``concurrency`` callers back to back for ``seconds``: calls/s."""
        deadline = time.perf_counter() + seconds
        counter = iter(range(first, first + 10_000_000))
        done = 0

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if await self.call(base, next(counter)) is not None:
                    done += 1

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


async def _count_steps(bootstrap: str, topic: str, codec: Codec, run_id: str, idle_s: float = 5.0) -> tuple[int, int]:
    """(distinct step events of this run, duplicates), reading until the topic stays idle."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", max_poll_records=5000)
    await consumer.start()
    seen: set[tuple[str, int]] = set()
    duplicates = 0
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                last = time.monotonic()
                for message in messages:
                    event = codec.decode(message.value, expect=SessionEvent)
                    if isinstance(event.payload, StepRecorded) and event.session_id.startswith(run_id):
                        key = (event.session_id, event.seq)
                        duplicates += key in seen
                        seen.add(key)
    finally:
        await consumer.stop()
    return len(seen), duplicates


async def _bench(bootstrap: str, topics: Topics, data_dir: Path, upstream: str, proxy: str, pids: tuple[int, int],
                 rate: float, seconds: float, repeats: int, concurrency: int, progress: Progress,
                 stop_proxy: Callable[[], None]) -> dict[str, Any]:
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await _wait_up(session, f"{upstream}/models")
        await _wait_up(session, f"{proxy}/art/health")
        load = Load(session, run_id)
        await load.open_loop(upstream, rate, 1.0, 0)  # warm both paths: connections, imports, first sends
        before = load.ok
        await load.open_loop(proxy, rate, 1.0, 1_000_000)
        proxied_ok = load.ok - before
        added50, added99, direct_rates, proxy_rates = [], [], [], []
        for r in range(repeats):
            direct, direct_rate = await load.open_loop(upstream, rate, seconds, 10_000_000 * (r + 2))
            before = load.ok
            proxied, proxied_rate = await load.open_loop(proxy, rate, seconds, 10_000_000 * (r + 2) + 5_000_000)
            proxied_ok += load.ok - before
            added50.append(statistics.median(proxied) - statistics.median(direct))
            added99.append(_pct(proxied, 0.99) - _pct(direct, 0.99))
            direct_rates.append(direct_rate)
            proxy_rates.append(proxied_rate)
            progress(f"round {r + 1}/{repeats} at {rate:g} calls/s: direct p50 {statistics.median(direct):.2f} ms "
                     f"p99 {_pct(direct, 0.99):.2f} ms; proxied p50 {statistics.median(proxied):.2f} ms "
                     f"p99 {_pct(proxied, 0.99):.2f} ms; added p50 {added50[-1]:.2f} ms p99 {added99[-1]:.2f} ms")
        before, upstream_cpu = load.ok, cpu_seconds(pids[0])
        baseline_max = await load.closed_loop(upstream, concurrency, seconds, 90_000_000)
        upstream_ms = (cpu_seconds(pids[0]) - upstream_cpu) * 1000 / max(1, load.ok - before)
        before, proxy_cpu = load.ok, cpu_seconds(pids[1])
        proxy_max = await load.closed_loop(proxy, concurrency, seconds, 95_000_000)
        proxy_ms = (cpu_seconds(pids[1]) - proxy_cpu) * 1000 / max(1, load.ok - before)
        proxied_ok += load.ok - before
        progress(f"closed loop, {concurrency} callers: direct {baseline_max:.0f} calls/s, "
                 f"proxied {proxy_max:.0f} calls/s; CPU per call: upstream {upstream_ms:.2f} ms, "
                 f"proxy {proxy_ms:.2f} ms")
    stop_proxy()  # completes its sessions and flushes its tracker
    codec = Codec(LocalRegistry(data_dir / "registry.json"))
    steps, duplicates = await _count_steps(bootstrap, topics.session_events.name, codec, run_id)
    progress(f"{steps} step events for {proxied_ok} proxied calls answered 200 ({duplicates} duplicates, "
             f"{load.failed} failed calls)")
    return {"p50_added_ms": round(statistics.median(added50), 3), "p99_added_ms": round(statistics.median(added99), 3),
            "p50_added_ms_spread": [round(min(added50), 3), round(max(added50), 3)],
            "p99_added_ms_spread": [round(min(added99), 3), round(max(added99), 3)],
            "rate": rate, "achieved_rate_proxied": round(statistics.median(proxy_rates), 1),
            "achieved_rate_direct": round(statistics.median(direct_rates), 1),
            "calls_per_s": round(proxy_max, 1), "baseline_calls_per_s": round(baseline_max, 1),
            "concurrency": concurrency, "proxy_cpu_ms_per_call": round(proxy_ms, 3),
            "upstream_cpu_ms_per_call": round(upstream_ms, 3), "failed_calls": load.failed,
            "lost": max(0, proxied_ok - steps) + load.failed, "duplicates": duplicates}


def bench_proxy(*, rate: float = 200.0, seconds: float = 5.0, repeats: int = 3, concurrency: int = 32,
                progress: Progress = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="art-bench-proxy-") as tmp:
        data_dir = Path(tmp) / "art-data"
        (data_dir / "logs").mkdir(parents=True)
        with EmbeddedBroker(log_path=data_dir / "logs" / "broker.log") as broker:
            topics = Topics(prefix=f"b{uuid.uuid4().hex[:6]}.")
            ensure_topics(broker.bootstrap, topics.all())
            up_port, proxy_port = free_port(), free_port()
            env = {**os.environ, "ART_STORAGE_DATA_DIR": str(data_dir), "ART_KAFKA_TOPIC_PREFIX": topics.prefix,
                   "ART_CAPTURE_SESSION_IDLE_TIMEOUT_S": "3600"}
            upstream = processes.spawn([sys.executable, "-m", "bench.openai_upstream", "--port", str(up_port)],
                                       log_path=data_dir / "logs" / "upstream.log", env=env)
            upstream_url = f"http://127.0.0.1:{up_port}/v1"
            proxy = processes.spawn([sys.executable, "-m", "agents.capture.run", "proxy", "--port", str(proxy_port),
                                     "--upstream", upstream_url, "--bootstrap", broker.bootstrap],
                                    log_path=data_dir / "logs" / "proxy.log", env=env)
            try:
                progress(f"upstream :{up_port}, proxy :{proxy_port}, broker {broker.bootstrap}; "
                         f"{repeats} rounds of {seconds:g} s at {rate:g} calls/s")
                return asyncio.run(_bench(broker.bootstrap, topics, data_dir, upstream_url,
                                          f"http://127.0.0.1:{proxy_port}/v1", (upstream.pid, proxy.pid), rate,
                                          seconds, repeats, concurrency,
                                          progress, lambda: processes.stop(proxy, grace_s=60)))
            finally:
                for proc in (proxy, upstream):
                    if proc.poll() is None:
                        processes.stop(proc, grace_s=10)

