"""`art bench replay`: heuristic re-scoring rate against the raw consume rate of the same topic.

``art bench replay [--trajectories 100000] [--runs 3]``; progress on stderr, the last stdout line
is one JSON object. ``trajectories`` records are produced once; then each run, in the same process
and on the same topic, measures (1) raw: fresh consumers reading every record to the highwater
without decoding, pass after pass until at least 5 s have been measured (a shorter baseline gives
no ratio), and (2) replay: ``run_replay`` with the chosen engine into a fresh ClickHouse database:
``sql`` (read, stage in ClickHouse, judge and RULER in SQL, rows stored) or ``python`` (read,
decode, judge, RULER per group of 4, encode, produce judgments and rewards, wait for the broker's
acks). Rates are medians over the runs, with their spread; ``ratio`` = median replay / median raw.
With ``--baseline`` the other engine is timed in each run too. ``stages`` times each Python CPU
step alone on the same records, in memory.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.measure import MIN_BASELINE_S, describe, progress, ratio_fields, spread
from config.settings import ArtConfig, KafkaConfig, StorageConfig
from consumers.replay import ReplayRequest, read_topic, run_replay
from judges import HeuristicJudge, HeuristicRuler
from schemas.codec import Codec
from schemas.models import (
    Answer,
    ClosedBy,
    SessionStatus,
    StepRecorded,
    TrajectoryCompleted,
    TrajectoryMetadata,
    TrajectoryStep,
    UseTool,
)
from schemas.registry import registry_for


def make_trajectory(i: int, steps: int = 5, group_size: int = 4) -> TrajectoryCompleted:
    """A plausible finished run: tool calls with the odd error, then an answer."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i)
    body = [TrajectoryStep(seq=s + 1, step=StepRecorded(
        step_number=s, observation=f"observation {i}/{s}", thought=f"use tool{(i + s) % 3} for part {s}",
        action=UseTool(tool=f"tool{(i + s) % 3}", input=f"query {s % (2 + i % 3)}"), action_input=f"query {s}",
        tool_result=f"result {s}", error="timeout" if (i + s) % 9 == 0 else None, timestamp=t0, tokens=120,
        execution_time_ms=15)) for s in range(steps - 1)]
    body.append(TrajectoryStep(seq=steps, step=StepRecorded(
        step_number=steps - 1, observation="enough", thought="answer now", action=Answer(text=f"done {i}"),
        timestamp=t0)))
    return TrajectoryCompleted(
        session_id=f"bench-{i}", agent_name=f"agent-{i % 7}", group_id=f"g-{i // group_size}",
        objective="find the answer", model="tiny", success_criteria=["done"], steps=body, final_answer=f"done {i}",
        status=SessionStatus.succeeded if i % 5 else SessionStatus.failed, closed_by=ClosedBy.completed,
        started_at=t0, completed_at=t0 + timedelta(seconds=2),
        metadata=TrajectoryMetadata(step_count=steps, total_tokens=120 * steps, total_cost=0.01, tools_used=["tool0"],
                                    error_count=0, execution_time_ms=15 * steps, efficiency=1 / steps))


async def _produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in values]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _raw_pass(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                                enable_auto_commit=False, fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        started = time.perf_counter()
        n = 0
        async for values in read_topic(consumer, topic, dict.fromkeys(range(partitions), 0), idle_s=3.0):
            n += len(values)
        return n, time.perf_counter() - started
    finally:
        await consumer.stop()


async def raw_consume(bootstrap: str, topic: str, partitions: int,
                      min_seconds: float = MIN_BASELINE_S) -> tuple[int, float, int]:
    """Read the whole topic, again and again with fresh consumers, until ``min_seconds`` were measured:
    (records, seconds, passes)."""
    records, seconds, passes = 0, 0.0, 0
    while seconds < min_seconds:
        n, s = await _raw_pass(bootstrap, topic, partitions)
        if n == 0:
            raise RuntimeError(f"raw consume read nothing from {topic}")
        records, seconds, passes = records + n, seconds + s, passes + 1
    return records, seconds, passes


def stages(codec: Codec, raws: list[bytes], topic: str) -> dict[str, float]:
    """Events/s of each CPU step alone, in memory (no broker)."""
    out: dict[str, float] = {}

    def rate(name: str, fn: Any, items: list[Any]) -> list[Any]:
        started = time.perf_counter()
        result = [fn(x) for x in items]
        out[name] = round(len(items) / (time.perf_counter() - started))
        return result

    trajs = rate("decode_validate", lambda r: codec.decode(r, expect=TrajectoryCompleted), raws)
    judge, ruler = HeuristicJudge(version="bench"), HeuristicRuler(reward_version="ruler-heuristic@bench")
    judged = rate("judge", judge.judge, trajs)
    rate("encode_judgment", lambda j: codec.encode(topic, j), judged)
    groups = [trajs[i:i + 4] for i in range(0, len(trajs), 4)]
    started = time.perf_counter()
    rewards = [r for g in groups for r in ruler.score_group(g)]
    out["ruler_per_trajectory"] = round(len(trajs) / (time.perf_counter() - started))
    rate("encode_reward", lambda r: codec.encode(topic, r), rewards)
    return out


def bench_replay(trajectories: int = 100_000, *, runs: int = 3, steps: int = 5, bootstrap: str | None = None,
                 engine: str = "sql", baseline: bool = False,
                 say: Callable[[str], None] = progress) -> dict[str, Any]:
    """Produce ``trajectories`` records once, then ``runs`` times: a raw read (>= 5 s) and a replay."""
    broker = None
    if not bootstrap:
        from stack.broker import EmbeddedBroker  # lazy: only the stand-alone bench needs a broker

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
    data_dir = Path(tempfile.mkdtemp(prefix="art-bench-replay-"))
    try:
        return asyncio.run(_bench(trajectories, runs, steps, bootstrap, engine, baseline, data_dir, say))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _bench(trajectories: int, runs: int, steps: int, bootstrap: str, engine: str, baseline: bool,
                 data_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from stack.broker import create_topics
    from store.clickhouse import connect, ensure_schema

    cfg = ArtConfig(kafka=KafkaConfig(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.", bootstrap=bootstrap),
                    storage=StorageConfig(data_dir=data_dir))
    topics = cfg.kafka.topics()
    await create_topics(bootstrap, topics.all())
    codec = Codec(registry_for("", data_dir))
    name = topics.trajectories.name
    say(f"replay: producing {trajectories:,} trajectories of {steps} steps")
    values = [(t.session_id.encode(), codec.encode(name, t))
              for t in (make_trajectory(i, steps) for i in range(trajectories))]
    await _produce(bootstrap, name, values)
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    other = "python" if engine == "sql" else "sql"
    records: list[dict[str, Any]] = []
    for i in range(runs):
        raw_n, raw_s, passes = await raw_consume(bootstrap, name, topics.trajectories.partitions)
        client = connect(dsn, f"bench_run{i}")  # a fresh database per run: nothing stored before
        ensure_schema(client)
        request = ReplayRequest(judge="heuristic@bench", reward_version="ruler-heuristic@bench",
                                engine=engine)  # type: ignore[arg-type]
        result = await run_replay(cfg, request, codec, bootstrap, client=client)
        stored = client.query("SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)").result_rows[0]
        record: dict[str, Any] = {
            "events": result.rescored, "seconds": round(result.seconds, 3),
            "events_per_s": _rate(result.rescored, result.seconds), "phases": result.phases,
            "judgments": result.judgments, "rewards": result.rewards,
            "stored_judgments": int(stored[0]) if engine == "sql" else None,
            "stored_rewards": int(stored[1]) if engine == "sql" else None,
            "raw_events": raw_n, "raw_seconds": round(raw_s, 3), "raw_passes": passes,
            "raw_events_per_s": _rate(raw_n, raw_s)}
        if baseline:
            again = await run_replay(cfg, ReplayRequest(judge="heuristic@base", reward_version="ruler-heuristic@base",
                                                        engine=other), codec, bootstrap,  # type: ignore[arg-type]
                                     client=client)
            record[f"{other}_events_per_s"] = _rate(again.rescored, again.seconds)
            record[f"{other}_seconds"] = round(again.seconds, 3)
        records.append(record)
        say(f"run {i + 1}/{runs}: {engine} replay {result.rescored:,} in {result.seconds:.2f} s "
            f"({record['events_per_s']:,}/s); raw {raw_n:,} records in {raw_s:.2f} s ({record['raw_events_per_s']:,}/s)"
            + (f"; {other} {record[f'{other}_events_per_s']:,}/s" if baseline else ""))
    return _summary(records, engine, other if baseline else None, trajectories, steps, values, codec, name, say)


def _summary(records: list[dict[str, Any]], engine: str, other: str | None, trajectories: int, steps: int,
             values: list[tuple[bytes, bytes]], codec: Codec, topic: str, say: Callable[[str], None]) -> dict[str, Any]:
    ours = spread([r["events_per_s"] for r in records])
    raw = spread([r["raw_events_per_s"] for r in records])
    say(describe(f"{engine} replay events/s", ours))
    say(describe("raw consume events/s", raw))
    out: dict[str, Any] = {"engine": engine, "trajectories": trajectories, "runs": len(records),
                           "events_per_s": round(ours.median), "raw_events_per_s": round(raw.median),
                           **ratio_fields(ours.median, raw.median, min(r["raw_seconds"] for r in records)),
                           "seconds": statistics.median(r["seconds"] for r in records),
                           "raw_seconds": min(r["raw_seconds"] for r in records),
                           "spread": {"events_per_s": ours.model_dump(), "raw_events_per_s": raw.model_dump()}}
    if other is not None:
        theirs = spread([r[f"{other}_events_per_s"] for r in records])
        say(describe(f"{other} replay events/s", theirs))
        out[f"{other}_events_per_s"] = round(theirs.median)
        out["spread"][f"{other}_events_per_s"] = theirs.model_dump()
    sample = [v for _, v in values[: min(len(values), 20_000)]]
    out.update({"exact": all(r["events"] == trajectories and r["judgments"] == trajectories
                             and r["rewards"] == trajectories
                             and (engine != "sql" or r["stored_judgments"] == r["stored_rewards"] == trajectories)
                             for r in records),
                "steps_per_trajectory": steps, "payload_bytes": sum(len(v) for _, v in values) // max(1, len(values)),
                "stages_events_per_s": stages(codec, sample, topic), "per_run": records})
    return out


def _rate(n: int, seconds: float) -> int:
    return round(n / seconds) if seconds else 0
