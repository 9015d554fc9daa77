"""Replay benchmark: re-score rate with the heuristic judge against the raw consume rate of the same topic.

``art bench replay --trajectories N``; the last line printed is one JSON object.
All rates are measured in the same run on the same topic: raw = a fresh consumer reading every
record to the highwater without decoding; replay = ``run_replay`` with the chosen engine into a
fresh chDB store: ``sql`` (read, stage in ClickHouse, judge and RULER in SQL, rows stored) or
``python`` (read, decode, judge, RULER per group of 4, encode, produce judgments and rewards, wait
for the broker's acks). With ``--baseline`` the Python engine also runs, as a same-run reference.
``stages`` times each Python CPU step alone on the same records, in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

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
from schemas.settings import ArtConfig, KafkaConfig, StorageConfig


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


async def _raw_consume(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
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


def bench_replay(trajectories: int, *, steps: int = 5, bootstrap: str | None = None, engine: str = "sql",
                 baseline: bool = False) -> dict[str, Any]:
    """Produce ``trajectories`` records, then time a raw read and a full heuristic replay of them."""
    broker = None
    if not bootstrap:
        from stack.broker import EmbeddedBroker  # lazy: only the stand-alone bench needs a broker

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
    try:
        return asyncio.run(_bench(trajectories, steps, bootstrap, engine, baseline))
    finally:
        if broker is not None:
            broker.stop()


async def _bench(trajectories: int, steps: int, bootstrap: str, engine: str, baseline: bool) -> dict[str, Any]:
    from stack.broker import create_topics
    from store.clickhouse import connect, ensure_schema

    data_dir = Path(tempfile.mkdtemp(prefix="art-bench-replay-"))
    cfg = ArtConfig(kafka=KafkaConfig(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.", bootstrap=bootstrap),
                    storage=StorageConfig(data_dir=data_dir))
    topics = cfg.kafka.topics()
    await create_topics(bootstrap, topics.all())
    codec = Codec(registry_for("", data_dir))
    name = topics.trajectories.name
    values = [(t.session_id.encode(), codec.encode(name, t))
              for t in (make_trajectory(i, steps) for i in range(trajectories))]
    await _produce(bootstrap, name, values)
    raw_n, raw_s = await _raw_consume(bootstrap, name, topics.trajectories.partitions)
    client = connect(f"chdb://{data_dir / 'clickhouse'}", "art")
    ensure_schema(client)
    request = ReplayRequest(judge="heuristic@bench", reward_version="ruler-heuristic@bench",
                            engine=engine)  # type: ignore[arg-type]
    result = await run_replay(cfg, request, codec, bootstrap, client=client)
    stored = client.query("SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)").result_rows[0]
    out: dict[str, Any] = {"engine": engine, "events": result.rescored, "seconds": round(result.seconds, 3),
                           "events_per_s": _rate(result.rescored, result.seconds), "phases": result.phases}
    if baseline:
        other = "python" if engine == "sql" else "sql"
        again = await run_replay(cfg, ReplayRequest(judge="heuristic@base", reward_version="ruler-heuristic@base",
                                                    engine=other), codec, bootstrap, client=client)  # type: ignore[arg-type]
        out[f"{other}_events_per_s"] = _rate(again.rescored, again.seconds)
    raw_per_s = _rate(raw_n, raw_s)
    sample = [v for _, v in values[: min(len(values), 20_000)]]
    out.update({"raw_events": raw_n, "raw_seconds": round(raw_s, 3), "raw_events_per_s": raw_per_s,
                "ratio": round(out["events_per_s"] / raw_per_s, 4) if raw_per_s else None,
                "judgments": result.judgments, "rewards": result.rewards,
                "stored_judgments": int(stored[0]) if engine == "sql" else None,
                "stored_rewards": int(stored[1]) if engine == "sql" else None, "steps_per_trajectory": steps,
                "payload_bytes": sum(len(v) for _, v in values) // max(1, len(values)),
                "stages_events_per_s": stages(codec, sample, name)})
    return out


def _rate(n: int, seconds: float) -> int:
    return round(n / seconds) if seconds else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="consumers.replay_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=5, help="steps per trajectory")
    parser.add_argument("--bootstrap", default="", help="an existing broker (default: start an embedded one)")
    parser.add_argument("--engine", choices=["sql", "python"], default="sql")
    parser.add_argument("--baseline", action="store_true", help="also run the other engine in the same run")
    args = parser.parse_args(argv)
    print(json.dumps(bench_replay(args.trajectories, steps=args.steps, bootstrap=args.bootstrap or None,
                                  engine=args.engine, baseline=args.baseline)))


if __name__ == "__main__":
    main()
