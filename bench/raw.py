"""The raw baseline: the same open-loop schedule through plain aiokafka produce + consume.

What Kafka alone costs on this machine, measured in the same run as the pipeline: the generator
processes follow the same ``Schedule`` (same sessions, keys and due times) but send pre-encoded
bytes of real session events of the same shape (no model building, no encoding), the way the SDK
sends: a bounded queue, one record batch per partition, ``acks=all``, the SDK's linger. One consumer
process (partitions assigned, from the beginning, no group join) reads every record. Latency is per
event: consumer receipt minus the record timestamp the generator stamped at emit (ms resolution);
lost/duplicated are counted per session key against the schedule. A fresh broker per probe.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.load import Fleet, Schedule, failures, merge_parts, run_schedule, serve_part, step_fields
from bench.measure import percentile
from bench.proc import cpu_seconds

WARM_KEY = b"warm"


async def _first_writes(bootstrap: str, topic: str, partitions: int) -> None:
    """One record per partition, one at a time: Tansu has been seen to lose one of several concurrent
    first writes to a new partition (docs/broker.md); the baseline measures Kafka, not that."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for p in range(partitions):
            await producer.send_and_wait(topic, b"", key=WARM_KEY, partition=p)
    finally:
        await producer.stop()


def sample_values(steps: int) -> tuple[bytes, bytes, bytes]:
    """Encoded started / step / completed events as the SDK would send them (same sizes)."""
    import tempfile
    from pathlib import Path

    from schemas.codec import Codec
    from schemas.models import SessionCompleted, SessionEvent, SessionStarted, SessionStatus, StepRecorded
    from schemas.registry import registry_for

    sid = f"b{uuid.uuid4().hex[:6]}p1-123-0"
    with tempfile.TemporaryDirectory(prefix="art-bench-raw-") as tmp:
        codec = Codec(registry_for("", Path(tmp)))

        def enc(seq: int, payload: Any) -> bytes:
            return codec.encode("raw", SessionEvent(session_id=sid, seq=seq, agent_name="bench-3", payload=payload))

        return (enc(0, SessionStarted(objective="bench task 123", group_id=f"{sid[:-2]}g", model="bench")),
                enc(1, StepRecorded(step_number=0, **step_fields(1, steps))),
                enc(steps + 1, SessionCompleted(final_answer="answer 123", status=SessionStatus.succeeded)))


def raw_part(conn: Connection, bootstrap: str, topic: str, schedule_json: str, part: int, parts: int,
             values: tuple[bytes, bytes, bytes], give_up_s: float, max_pending: int = 10_000) -> None:
    """One generator process: schedule -> queue -> batches per partition (the SDK's way, minus the SDK)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    schedule = Schedule.model_validate_json(schedule_json)
    last_k = schedule.shape.steps + 1

    async def setup() -> dict[str, Any]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=512 * 1024)
        await producer.start()
        ids = sorted(await producer.partitions_for(topic))
        return {"producer": producer, "ids": ids, "queue": asyncio.Queue(maxsize=max_pending)}

    async def sender(state: dict[str, Any]) -> None:
        producer, queue, ids, choose = state["producer"], state["queue"], state["ids"], DefaultPartitioner()
        partitions: dict[bytes, int] = {}
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 2000:
                batch.append(queue.get_nowait())
            by_partition: dict[int, list[tuple[bytes, bytes, int]]] = {}
            for key, value, ts in batch:
                p = partitions.get(key)
                if p is None:
                    p = partitions[key] = choose(key, ids, ids)
                by_partition.setdefault(p, []).append((key, value, ts))
            futures = []
            for p, records in by_partition.items():
                builder = producer.create_batch()
                for key, value, ts in records:
                    if builder.append(key=key, value=value, timestamp=ts) is None:
                        futures.append(await producer.send_batch(builder, topic, partition=p))
                        builder = producer.create_batch()
                        builder.append(key=key, value=value, timestamp=ts)
                futures.append(await producer.send_batch(builder, topic, partition=p))
            await asyncio.gather(*futures)
            for _ in batch:
                queue.task_done()

    async def run(state: dict[str, Any], t0: float) -> dict[str, Any]:
        queue = state["queue"]
        task = asyncio.create_task(sender(state))

        async def emit(group: int, member: int, k: int) -> None:
            value = values[0] if k == 0 else values[2] if k == last_k else values[1]
            await queue.put((schedule.session_id(group, member).encode(), value, int(time.time() * 1000)))

        lags = await run_schedule(schedule, part, parts, emit, t0, give_up_s)
        await queue.join()
        task.cancel()
        return lags.model_dump()

    async def teardown(state: dict[str, Any]) -> None:
        await state["producer"].stop()

    serve_part(conn, setup, run, teardown)


def raw_consumer(conn: Connection, bootstrap: str, topic: str, partitions: int, schedule_json: str,
                 drain_s: float) -> None:
    """Read every record; per-event latency from the record timestamp; per-session counts."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    schedule = Schedule.model_validate_json(schedule_json)

    async def setup() -> Any:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                                    max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        return consumer

    async def run(consumer: Any, t0: float) -> dict[str, Any]:
        deadline = t0 + schedule.last_due_s + drain_s
        latencies = array("l")
        per_key: Counter[bytes] = Counter()
        received = 0
        last = 0.0
        while received < schedule.events and time.time() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            now_ms = int(now * 1000)
            for records in batch.values():
                for r in records:
                    if r.key == WARM_KEY:
                        continue
                    latencies.append(now_ms - r.timestamp)
                    per_key[r.key] += 1
                    received += 1
                last = now
        per = schedule.shape.events_per_session
        kept = sum(min(n, per) for n in per_key.values())
        values = list(latencies)
        return {"received": received, "lost": schedule.events - kept, "duplicated": received - kept,
                "p50_ms": float(percentile(values, 50)) if values else None,
                "p99_ms": float(percentile(values, 99)) if values else None,
                "max_ms": float(max(values)) if values else None, "last_receive": last}

    async def teardown(consumer: Any) -> None:
        await consumer.stop()

    serve_part(conn, setup, run, teardown)


def measure_raw(rate: float, schedule: Schedule, *, processes: int, partitions: int, bound_ms: float,
                max_lag_ms: float, drain_s: float, give_up_s: float,
                say: Callable[[str], None]) -> tuple[bool, dict[str, Any]]:
    """One raw probe on a fresh broker: (passed, record)."""
    from schemas.topics import TopicSpec
    from stack.broker import EmbeddedBroker, ensure_topics

    broker = EmbeddedBroker().start()
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    consumer = gens = None
    try:
        ensure_topics(broker.bootstrap, [TopicSpec(topic, partitions, "art.SessionEvent")])
        asyncio.run(_first_writes(broker.bootstrap, topic, partitions))
        assert broker.proc is not None
        doc = schedule.model_dump_json()
        consumer = Fleet(raw_consumer, [(broker.bootstrap, topic, partitions, doc, drain_s)])
        values = sample_values(schedule.shape.steps)
        gens = Fleet(raw_part, [(broker.bootstrap, topic, doc, i, processes, values, give_up_s)
                                for i in range(processes)])
        consumer.ready()
        gens.ready()
        t0 = time.time() + 0.5
        consumer.go(t0)
        gens.go(t0)
        time.sleep(max(0.0, t0 - time.time()))
        broker_cpu0 = cpu_seconds(broker.proc.pid) or 0.0
        say(f"  raw: {schedule.events:,} events over {schedule.last_due_s:.0f} s, {processes} generator processes")
        emitted = merge_parts(gens.results(schedule.last_due_s + give_up_s + 120))
        read = consumer.results(drain_s + give_up_s + 120)[0]
        broker_cpu = (cpu_seconds(broker.proc.pid) or 0.0) - broker_cpu0
    finally:
        for fleet in (gens, consumer):
            if fleet is not None:
                fleet.stop()
        broker.stop()
    events = schedule.events
    cpu = {"generators": emitted["cpu_s"], "broker": broker_cpu, "consumer": read.get("cpu_s", 0.0)}
    record: dict[str, Any] = {"system": "raw", "rate": rate, "events": events, **emitted,
                              "received": read.get("received", 0), "lost": read.get("lost", events),
                              "duplicated": read.get("duplicated", 0), "p50_ms": read.get("p50_ms"),
                              "p99_ms": read.get("p99_ms"), "max_ms": read.get("max_ms"),
                              "cpu_us_per_event": {k: round(1e6 * v / events, 1) for k, v in cpu.items()}}
    record["cpu_us_per_event"]["total"] = round(sum(record["cpu_us_per_event"].values()), 1)
    if "error" in read:
        record["errors"] = [*record["errors"], read["error"]]
    reasons = failures(record, events, bound_ms, max_lag_ms, p99_key="p99_ms")
    record["failed_because"] = reasons
    say(f"  raw: p99 {record['p99_ms']} ms, lost {record['lost']}, lag p99 {record['lag_p99_ms']} ms"
        + (f" -> {'; '.join(reasons)}" if reasons else ""))
    return not reasons, record
