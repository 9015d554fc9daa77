"""`art bench proxy`: what the recording proxy adds to a model call, against the same upstream
called directly in the same run.

Processes: the embedded broker, the deterministic upstream (bench/openai_upstream.py), the proxy
(`python -m agents.capture.run proxy`, the same entry `art up` spawns) and this load generator.
Latency: an open loop at ``rate`` calls/s for ``seconds``, alternating direct and proxied rounds
(``repeats`` each); added = proxied percentile - direct percentile of the same round. Throughput:
a closed loop of ``concurrency`` callers, direct and proxied rounds alternating (``repeats`` each);
``ratio`` = median proxied / median direct calls/s, refused when a direct round measured under 5 s.
Every figure is a median over the rounds with its spread (bench.measure). Lost: every proxied call
that got a 200 must be one step event on the session-events topic (read back after the proxy stopped).
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

from bench.measure import describe, percentile, progress, ratio_fields, spread
from bench.proc import cpu_seconds
from schemas.codec import Codec
from schemas.models import SessionEvent, StepRecorded
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from stack import processes
from stack.broker import EmbeddedBroker, ensure_topics, free_port

Progress = Callable[[str], None]


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

    async def closed_loop(self, base: str, concurrency: int, seconds: float, first: int) -> tuple[float, float]:
        """``concurrency`` callers back to back for ``seconds``: (calls/s, seconds measured)."""
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
        elapsed = time.perf_counter() - start
        return done / elapsed, elapsed


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
                 stop_proxy: Callable[[], object]) -> dict[str, Any]:
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
            added99.append(percentile(proxied, 99) - percentile(direct, 99))
            direct_rates.append(direct_rate)
            proxy_rates.append(proxied_rate)
            progress(f"round {r + 1}/{repeats} at {rate:g} calls/s: direct p50 {statistics.median(direct):.2f} ms "
                     f"p99 {percentile(direct, 99):.2f} ms; proxied p50 {statistics.median(proxied):.2f} ms "
                     f"p99 {percentile(proxied, 99):.2f} ms; added p50 {added50[-1]:.2f} ms p99 {added99[-1]:.2f} ms")
        closed: dict[str, list[float]] = {"direct": [], "proxied": [], "direct_s": [], "upstream_ms": [],
                                          "proxy_ms": []}
        for r in range(repeats):  # alternating which side goes first, as the latency rounds do
            for side in (("direct", "proxied") if r % 2 == 0 else ("proxied", "direct")):
                base, pid = (upstream, pids[0]) if side == "direct" else (proxy, pids[1])
                before, cpu0 = load.ok, cpu_seconds(pid) or 0.0
                calls_per_s, measured_s = await load.closed_loop(base, concurrency, seconds,
                                                                 90_000_000 + 1_000_000 * (2 * r + (side == "proxied")))
                calls = max(1, load.ok - before)
                cpu_ms = ((cpu_seconds(pid) or 0.0) - cpu0) * 1000 / calls
                closed[side].append(calls_per_s)
                if side == "direct":
                    closed["direct_s"].append(measured_s)
                    closed["upstream_ms"].append(cpu_ms)
                else:
                    proxied_ok += load.ok - before
                    closed["proxy_ms"].append(cpu_ms)
                progress(f"closed round {r + 1}/{repeats}, {concurrency} callers, {side:>7}: {calls_per_s:.0f} calls/s "
                         f"over {measured_s:.1f} s; CPU per call {cpu_ms:.2f} ms "
                         f"({'upstream' if side == 'direct' else 'proxy'})")
    stop_proxy()  # completes its sessions and flushes its tracker
    codec = Codec(LocalRegistry(data_dir / "registry.json"))
    steps, duplicates = await _count_steps(bootstrap, topics.session_events.name, codec, run_id)
    progress(f"{steps} step events for {proxied_ok} proxied calls answered 200 ({duplicates} duplicates, "
             f"{load.failed} failed calls)")
    spreads = {"p50_added_ms": spread(added50), "p99_added_ms": spread(added99),
               "achieved_rate_proxied": spread(proxy_rates), "achieved_rate_direct": spread(direct_rates),
               "calls_per_s": spread(closed["proxied"]), "baseline_calls_per_s": spread(closed["direct"]),
               "proxy_cpu_ms_per_call": spread(closed["proxy_ms"]),
               "upstream_cpu_ms_per_call": spread(closed["upstream_ms"])}
    for name, s in spreads.items():
        progress(describe(name, s))
    med = {name: round(s.median, 3) for name, s in spreads.items()}
    return {**med, **ratio_fields(spreads["calls_per_s"].median, spreads["baseline_calls_per_s"].median,
                                  min(closed["direct_s"])),
            "baseline_seconds": round(min(closed["direct_s"]), 2), "rate": rate, "seconds": seconds,
            "repeats": repeats, "concurrency": concurrency, "failed_calls": load.failed,
            "lost": max(0, proxied_ok - steps) + load.failed, "duplicates": duplicates,
            "spread": {name: s.model_dump() for name, s in spreads.items()}}


def bench_proxy(*, rate: float = 200.0, seconds: float = 5.0, repeats: int = 3, concurrency: int = 32,
                progress: Progress = progress) -> dict[str, Any]:
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

