"""Replay: re-score finished trajectories with another judge / reward version, side by side.

Reads the trajectories topic with a fresh consumer group (or the ClickHouse mirror, for history the
log no longer holds after a broker restart), judges every trajectory again, RULER-scores its group
again, and produces the new ``TrajectoryJudged`` / ``RewardAssigned`` events to their topics. The
sink stores them keyed by (session, version): old versions stay intact, and a second identical
replay adds no rows (deterministic event ids and keys).

The embedded broker cannot seek by time (``offsets_for_times`` returns 0) and reports wrong end
offsets (docs/broker.md). So start offsets come from the mirror's log coordinates (per partition,
the lowest offset of a trajectory completed at or after ``since`` in the current log epoch), the
end is the highwater from fetch responses (snapshotted at the first fetch, so a live stream cannot
keep a replay running), with an idle timeout as a backstop, and every record is filtered by its
``completed_at`` anyway (log order is emission order, not completion order).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from clickhouse_connect.driver.client import Client

from config.settings import ArtConfig
from consumers.replay_model import ReplayError, ReplayRequest, ReplayResult, parse_since, replay_config
from consumers.replay_sql import SqlReplay, run_sql_replay
from judges import HeuristicJudge, JudgeCache, build_judge, build_ruler
from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.models import TrajectoryCompleted

Progress = Callable[[int, int | None], None]  # (records read, records expected or None while unknown)
Batch = list[tuple[int, int, int, bytes]]  # (log epoch, partition, offset, value)
__all__ = ["ReplayError", "ReplayRequest", "ReplayResult", "parse_since", "read_topic", "run_replay"]


class Rescorer:
    """Judges trajectories and RULER-scores their groups; returns (topic, key, value) messages."""

    def __init__(self, cfg: ArtConfig, request: ReplayRequest, codec: Codec, concurrency: int = 8) -> None:
        rcfg = replay_config(cfg, request)
        cache = None if request.judge_name == "heuristic" else JudgeCache(
            path=cfg.storage.data_dir / "cache" / "judge-answers.sqlite")
        self.judge = build_judge(rcfg, cache=cache)
        self.ruler = build_ruler(rcfg, cache=cache) if request.reward_version else None
        self.codec = codec
        topics = cfg.kafka.topics()
        self.judgments_topic = topics.judgments.name
        self.rewards_topic = topics.rewards.name
        self.size = cfg.judge.rollouts_per_group
        self.since = request.since
        self.result = ReplayResult()
        self._seen: set[str] = set()
        self._open: dict[str, list[TrajectoryCompleted]] = {}
        self._limit = asyncio.Semaphore(concurrency)

    def accept(self, raw: bytes) -> TrajectoryCompleted | None:
        """Decode, drop duplicates and trajectories completed before ``since``."""
        self.result.read += 1
        try:
            traj = self.codec.decode(raw, expect=TrajectoryCompleted)
        except CodecError:
            self.result.undecodable += 1
            return None
        if self.since is not None and traj.completed_at < self.since:
            self.result.skipped_before_since += 1
            return None
        if traj.session_id in self._seen:
            self.result.duplicates += 1
            return None
        self._seen.add(traj.session_id)
        return traj

    async def _judge(self, traj: TrajectoryCompleted) -> Any:
        async with self._limit:
            return await self.judge.ajudge(traj)

    async def batch(self, raws: Iterable[bytes]) -> list[tuple[str, bytes, bytes]]:
        trajs = [t for t in map(self.accept, raws) if t is not None]
        if isinstance(self.judge, HeuristicJudge):  # no I/O: skip a coroutine per trajectory
            judged: list[Any] = [self.judge.judge(t) for t in trajs]
        else:
            judged = await asyncio.gather(*(self._judge(t) for t in trajs), return_exceptions=True)
        out: list[tuple[str, bytes, bytes]] = []
        for traj, judgment in zip(trajs, judged, strict=True):
            if isinstance(judgment, BaseException):
                self.result.judge_failures += 1
                continue
            out.append((self.judgments_topic, traj.session_id.encode(),
                        self.codec.encode(self.judgments_topic, judgment)))
            self.result.judgments += 1
            self.result.rescored += 1
            if self.ruler is None:
                continue
            if traj.group_id is None:
                out.extend(await self._score([traj]))
                continue
            members = self._open.setdefault(traj.group_id, [])
            members.append(traj)
            if len(members) >= self.size:
                out.extend(await self._score(self._open.pop(traj.group_id)))
        return out

    async def finish(self) -> list[tuple[str, bytes, bytes]]:
        """Score the groups still open when the input ended (fewer members than rollouts_per_group)."""
        out: list[tuple[str, bytes, bytes]] = []
        for group_id in sorted(self._open):
            out.extend(await self._score(self._open[group_id]))
        self._open.clear()
        return out

    async def _score(self, group: list[TrajectoryCompleted]) -> list[tuple[str, bytes, bytes]]:
        assert self.ruler is not None
        rewards = await self.ruler.ascore_group(group)
        self.result.groups += 1
        self.result.rewards += len(rewards)
        return [(self.rewards_topic, r.session_id.encode(), self.codec.encode(self.rewards_topic, r))
                for r in rewards]


async def start_offsets(client: Client | None, topic: str, partitions: list[int], since: datetime | None,
                        log_epoch: int | None) -> dict[int, int]:
    """Per partition, where records completed at/after ``since`` begin, from the mirror's coordinates.

    A partition whose mirrored records are all older starts after its last mirrored offset; a
    partition the mirror knows nothing of (in this epoch) starts at 0. Records are filtered anyway.
    """
    starts = dict.fromkeys(partitions, 0)
    if since is None or client is None:
        return starts
    epoch = log_epoch
    if epoch is None:
        sql = "SELECT max(log_epoch) FROM trajectories WHERE topic = {t:String}"
        rows = (await asyncio.to_thread(client.query, sql, parameters={"t": topic})).result_rows
        epoch = int(rows[0][0]) if rows else 0
    result = await asyncio.to_thread(client.query, """
        SELECT partition, countIf(completed_at >= {since:DateTime64(6, 'UTC')}) AS n,
               minIf(offset, completed_at >= {since:DateTime64(6, 'UTC')}) AS first, max(offset) AS last
        FROM trajectories WHERE topic = {t:String} AND log_epoch = {e:UInt64} GROUP BY partition""",
        parameters={"since": since, "t": topic, "e": epoch})
    for partition, n, first, last in result.result_rows:
        if int(partition) in starts:
            starts[int(partition)] = int(first) if n else int(last) + 1
    return starts


async def read_topic(consumer: AIOKafkaConsumer, topic: str, starts: dict[int, int], idle_s: float,
                     progress: Progress | None = None, max_records: int = 5000
                     ) -> AsyncIterator[list[tuple[int, int, bytes]]]:
    """(partition, offset, value) from ``starts`` up to each partition's highwater as first seen in a fetch."""
    tps = [TopicPartition(topic, p) for p in sorted(starts)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, starts[tp.partition])
    position = {tp: starts[tp.partition] for tp in tps}
    target: dict[TopicPartition, int] = {}
    read, last_data = 0, time.monotonic()
    while True:
        batch = await consumer.getmany(*[tp for tp in tps if tp not in target or position[tp] < target[tp]],
                                       timeout_ms=200, max_records=max_records)
        values: list[tuple[int, int, bytes]] = []
        for tp, records in batch.items():
            values.extend((tp.partition, r.offset, r.value) for r in records if r.value is not None)
            position[tp] = records[-1].offset + 1
        for tp in tps:
            if tp not in target and (hw := consumer.highwater(tp)) is not None:
                target[tp] = hw
        if values:
            read += len(values)
            last_data = time.monotonic()
            yield values
        if progress is not None:
            known = len(target) == len(tps)
            progress(read, sum(max(0, target[tp] - starts[tp.partition]) for tp in tps) if known else None)
        if len(target) == len(tps) and all(position[tp] >= target[tp] for tp in tps):
            return
        if not values and time.monotonic() - last_data > idle_s:
            return


async def topic_batches(cfg: ArtConfig, request: ReplayRequest, bootstrap: str, client: Client | None,
                        log_epoch: int | None,
                        progress: Progress | None) -> AsyncGenerator[Batch, None]:
    """The trajectories topic from the start offsets of ``request.since`` to its highwater."""
    topic = cfg.kafka.topics().trajectories.name
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"{cfg.kafka.topic_prefix}replay-{uuid.uuid4().hex[:12]}",
        enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100,
        max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = sorted(await _partitions(consumer, topic))
        starts = await start_offsets(client, topic, partitions, request.since, log_epoch)
        epoch = log_epoch or 0
        async for records in read_topic(consumer, topic, starts, request.idle_s, progress):
            yield [(epoch, p, o, v) for p, o, v in records]
    finally:
        await consumer.stop()


async def mirror_batches(client: Client, since: datetime | None, progress: Progress | None,
                         chunk: int = 5000) -> AsyncGenerator[Batch, None]:
    """Mirrored trajectories completed at/after ``since`` (one record per session), in chunks."""
    where = "WHERE completed_at >= {since:DateTime64(6, 'UTC')}" if since else ""
    params = {"since": since} if since else {}
    rows = await asyncio.to_thread(client.query, f"SELECT uniqExact(session_id) FROM trajectories {where}",
                                   parameters=params)
    total, done, offset = int(rows.result_rows[0][0]), 0, 0
    while True:
        result = await asyncio.to_thread(
            client.query, f"SELECT log_epoch, partition, offset, payload FROM trajectories {where} "
            f"ORDER BY completed_at, session_id LIMIT 1 BY session_id LIMIT {chunk} OFFSET {offset}",
            parameters=params, column_formats={"payload": "bytes"})
        if not result.result_rows:
            return
        batch = [(int(e), int(p), int(o), bytes(v)) for e, p, o, v in result.result_rows]
        offset += len(batch)
        done += len(batch)
        yield batch
        if progress is not None:
            progress(done, total)


def use_sql(request: ReplayRequest, client: Client | None) -> bool:
    """Whether the columnar engine runs: asked for, or ``auto`` with the heuristic judge and a store."""
    if request.engine == "sql":
        if request.judge_name != "heuristic":
            raise ReplayError(f"--engine sql runs the heuristic judge only, not {request.judge_name!r}")
        if client is None:
            raise ReplayError("--engine sql needs a reachable ClickHouse")
        return True
    return request.engine == "auto" and request.judge_name == "heuristic" and client is not None


async def run_replay(cfg: ArtConfig, request: ReplayRequest, codec: Codec, bootstrap: str, *,
                     client: Client | None = None, log_epoch: int | None = None,
                     progress: Progress | None = None) -> ReplayResult:
    """Re-score; returns once every result is stored (sql) or acknowledged by the broker (python)."""
    if request.source == "clickhouse" and client is None:
        raise ReplayError("--source clickhouse needs a reachable ClickHouse")
    batches = (mirror_batches(client, request.since, progress) if client is not None and request.source == "clickhouse"
               else topic_batches(cfg, request, bootstrap, client, log_epoch, progress))
    try:
        if client is not None and use_sql(request, client):
            result = await run_sql_replay(SqlReplay(client, cfg, request, codec), batches)
        else:
            result = await _python_replay(cfg, request, codec, bootstrap, batches)
    finally:
        await batches.aclose()  # a failed replay stops its consumer now, not when collected
    if request.source == "topic":
        result.note = await _older_history_note(client, request.since, log_epoch)
    return result


async def _python_replay(cfg: ArtConfig, request: ReplayRequest, codec: Codec, bootstrap: str,
                         batches: AsyncIterator[Batch]) -> ReplayResult:
    """Decode, judge and RULER in Python; produce the new events to their topics."""
    started = time.perf_counter()
    rescorer = Rescorer(cfg, request, codec)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024,
                                max_request_size=16 * 1024 * 1024)
    await producer.start()
    futures: list[asyncio.Future[Any]] = []

    async def emit(messages: list[tuple[str, bytes, bytes]]) -> None:
        for out_topic, key, value in messages:
            futures.append(await producer.send(out_topic, value, key=key))
        if len(futures) > 20_000:
            await asyncio.gather(*futures)
            futures.clear()

    try:
        async for records in batches:
            await emit(await rescorer.batch(v for *_, v in records))
        await emit(await rescorer.finish())
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    rescorer.result.seconds = time.perf_counter() - started
    return rescorer.result


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    if topic not in await consumer.topics():
        raise ReplayError(f"topic {topic} does not exist on the broker (is the stack up? try --source clickhouse)")
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ReplayError(f"topic {topic} has no partitions")
    return set(partitions)


async def _older_history_note(client: Client | None, since: datetime | None, log_epoch: int | None) -> str:
    """Tell the operator when the mirror holds trajectories the current log no longer has."""
    if client is None or log_epoch is None:
        return ""
    where = "log_epoch != {e:UInt64}" + (" AND completed_at >= {since:DateTime64(6, 'UTC')}" if since else "")
    try:
        rows = await asyncio.to_thread(client.query, f"SELECT uniqExact(session_id) FROM trajectories WHERE {where}",
                                       parameters={"e": log_epoch, "since": since})
    except Exception:
        return ""
    older = int(rows.result_rows[0][0])
    return (f"{older} trajectories in range are only in ClickHouse (earlier broker epochs): "
            "replay them with --source clickhouse") if older else ""
