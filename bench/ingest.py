"""End-to-end ingestion benchmark: agents in several processes -> rows visible in ClickHouse.

Baselines, same run, same machine: aiokafka producing and consuming the same encoded bytes with no
processing, once with record batches built per partition (the SDK's way; ``ratio``) and once with
one ``send`` per event (``ratio_vs_per_send``). Lost/duplicated are counted from ClickHouse
against what was sent.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.settings import load_config
from schemas.topics import TopicSpec
from stack.broker import ensure_topics
from stack.supervisor import Stack
from store.clickhouse import writer


def _agent_process(data_dir: str, first: int, count: int, steps: int, start_at: float) -> None:
    from agents.tracking import Tracker
    from schemas.models import SessionStatus, UseTool

    cfg = load_config(environ={"ART_STORAGE_DATA_DIR": data_dir})

    async def one(tracker: Tracker, i: int) -> None:
        session = await tracker.start_session(agent_name=f"bench-{i % 8}", objective=f"bench task {i}",
                                              group_id=f"g{i // 4}", model="bench")
        for s in range(steps):
            await session.record_step(observation="observation " * 8, thought="thinking " * 8,
                                      action=UseTool(tool=f"tool{s % 4}", input=f"input {s}"), tokens=50, cost=1e-4,
                                      execution_time_ms=5)
        await session.complete("done", SessionStatus.succeeded)

    async def main() -> None:
        async with Tracker.from_config(cfg, max_pending=20_000, linger_ms=10) as tracker:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            await asyncio.gather(*(one(tracker, first + i) for i in range(count)))

    asyncio.run(main())


async def _raw_rate(bootstrap: str, topic: str, payloads: list[bytes], partitions: int, *, batched: bool) -> float:
    """aiokafka produce + consume of the same bytes, concurrently, no processing: events/s.

    ``batched``: produced with aiokafka's fastest path, record batches built per partition (what the
    SDK does); otherwise one ``send`` per record (aiokafka's ordinary API)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=512 * 1024)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", max_poll_records=5000)
    await producer.start()
    await consumer.start()
    try:
        start = time.perf_counter()

        async def produce_each() -> None:
            for i, p in enumerate(payloads):
                await producer.send(topic, p, key=str(i % 1000).encode())
            await producer.flush()

        async def produce() -> None:
            futures = []
            for partition in range(partitions):
                builder = producer.create_batch()
                for i in range(partition, len(payloads), partitions):
                    if builder.append(key=str(i % 1000).encode(), value=payloads[i], timestamp=None) is None:
                        futures.append(await producer.send_batch(builder, topic, partition=partition))
                        builder = producer.create_batch()
                        builder.append(key=str(i % 1000).encode(), value=payloads[i], timestamp=None)
                futures.append(await producer.send_batch(builder, topic, partition=partition))
            await asyncio.gather(*futures)

        task = asyncio.create_task(produce() if batched else produce_each())
        received = 0
        while received < len(payloads):
            batch = await consumer.getmany(timeout_ms=200)
            received += sum(len(v) for v in batch.values())
        await task
        return len(payloads) / (time.perf_counter() - start)
    finally:
        await producer.stop()
        await consumer.stop()


def run(agents: int = 200, steps: int = 100, processes: int = 2, workers: int = 1, sinks: int = 1,
        progress: Any = None) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="art-bench-"))
    cfg = load_config(environ={"ART_STORAGE_DATA_DIR": str(data_dir)})
    stack = Stack(cfg, workers=workers, sinks=sinks)
    info = stack.start()
    try:
        client = writer(cfg, info.clickhouse_url)
        expected = agents * steps
        # baseline: same bytes as the pipeline will carry
        from agents.tracking import Tracker
        from schemas.models import SessionEvent, StepRecorded, UseTool

        codec = Tracker.from_config(cfg).codec
        raw_topic = TopicSpec(f"bench-raw-{uuid.uuid4().hex[:6]}", cfg.kafka.session_partitions, "art.SessionEvent")
        ensure_topics(info.bootstrap, [raw_topic])
        sample = codec.encode(raw_topic.name, SessionEvent(session_id="x", seq=1, agent_name="bench-1", payload=(
            StepRecorded(step_number=0, observation="observation " * 8, thought="thinking " * 8,
                         action=UseTool(tool="tool1", input="input 1"), tokens=50, cost=1e-4))))
        raw_rate = asyncio.run(_raw_rate(info.bootstrap, raw_topic.name, [sample] * expected, raw_topic.partitions,
                                         batched=True))
        raw_each = TopicSpec(f"bench-raw-{uuid.uuid4().hex[:6]}", cfg.kafka.session_partitions, "art.SessionEvent")
        ensure_topics(info.bootstrap, [raw_each])
        raw_each_rate = asyncio.run(_raw_rate(info.bootstrap, raw_each.name, [sample] * expected, raw_each.partitions,
                                              batched=False))
        if progress:
            progress(f"raw aiokafka produce+consume: {raw_rate:,.0f} events/s batched, {raw_each_rate:,.0f} "
                     "one send per event")
        time.sleep(8)  # let the worker and sink finish joining their groups
        start_at = time.time() + 2.0
        per = [agents // processes + (1 if i < agents % processes else 0) for i in range(processes)]
        procs = []
        first = 0
        for count in per:
            p = mp.get_context("spawn").Process(target=_agent_process,
                                                args=(str(data_dir), first, count, steps, start_at))
            p.start()
            procs.append(p)
            first += count
        seen = 0
        while seen < expected:
            time.sleep(0.25)
            seen = client.query("SELECT count() FROM steps").result_rows[0][0]
            if progress:
                progress(f"steps visible: {seen:,}/{expected:,}")
            if time.time() - start_at > 600:
                break
        end = time.time()
        for p in procs:
            p.join()
        time.sleep(1.0)
        total, distinct, p50, p99, first_emit, last_visible, last_emit = client.query(
            "SELECT count(), count(DISTINCT (session_id, seq)), "
            "quantile(0.5)(dateDiff('millisecond', emitted_at, inserted_at)), "
            "quantile(0.99)(dateDiff('millisecond', emitted_at, inserted_at)), "
            "toFloat64(min(emitted_at)), toFloat64(max(inserted_at)), toFloat64(max(emitted_at)) "
            "FROM steps").result_rows[0]
        seconds = float(last_visible) - float(first_emit)
        rate = distinct / seconds if seconds > 0 else 0.0
        trajectories = client.query("SELECT count() FROM trajectories").result_rows[0][0]
        return {"events": expected, "seconds": round(seconds, 3), "events_per_s": round(rate, 1),
                "raw_events_per_s": round(raw_rate, 1), "ratio": round(rate / raw_rate, 3) if raw_rate else 0.0,
                "raw_per_send_events_per_s": round(raw_each_rate, 1),
                "ratio_vs_per_send": round(rate / raw_each_rate, 3) if raw_each_rate else 0.0,
                "p50_ms": float(p50), "p99_ms": float(p99), "lost": expected - distinct, "duplicated": total - distinct,
                "trajectories": trajectories, "agents": agents, "steps": steps, "processes": processes,
                "wall_s": round(end - start_at, 3), "cpus": os.cpu_count(),
                "emit_seconds": round(float(last_emit) - float(first_emit), 3)}
    finally:
        stack.stop()
