"""Columnar replay: stage raw trajectory records in ClickHouse, judge and reward them in SQL.

The Python replay decodes, validates, judges and re-encodes every trajectory one by one (~600 us
each here). For the heuristic judge none of that needs Python: records read from the log are
re-framed into Avro object containers (``schemas.container``, byte concatenation) and inserted into
a per-replay staging table, where ClickHouse decodes them; ``judges.heuristic_sql`` then writes
every judgment and reward with one INSERT … SELECT each. Reading the next batch overlaps with
ClickHouse decoding the previous one.

Results land directly in the ``judgments`` and ``rewards`` tables (keyed by (session, version), so
old versions stay and a second identical replay adds nothing), each row carrying the log
coordinates of the trajectory it scores. They are not produced to the judgments/rewards topics:
this path is for re-scoring history in the store; ``--engine python`` emits events instead.
Records written with an older schema are re-encoded to today's in Python first. A batch ClickHouse
cannot decode is checked record by record with the Python codec; records that fail there are counted
as undecodable and the rest are staged again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from config.settings import ArtConfig
from consumers.replay_model import ReplayRequest, ReplayResult
from judges import JudgeWeights
from judges.heuristic_sql import INPUT_FIELDS, SqlHeuristic, measure_select, unique_select
from schemas.catalog import schema_text
from schemas.codec import Codec
from schemas.container import SOURCE_COLUMNS, field_types, with_source_fields, zigzag
from store.clickhouse import literal
from store.ingest import insert_container

TRAJECTORY = "art.TrajectoryCompleted"
STAGE_ENGINE = "MergeTree ORDER BY tuple()"  # on disk: a replay of all history must not need it all in RAM
PARALLEL = {"max_insert_threads": 2}  # INSERT … SELECT on every core, not one
MIN_BATCH = 10000  # records per staging insert (each insert has a fixed cost of tens of ms)
Record = tuple[int, int, int, bytes]  # (log epoch, partition, offset, Confluent-framed value)


class SqlReplay:
    """One replay's staging table, the batches staged into it and the final scoring statements."""

    def __init__(self, client: Client, cfg: ArtConfig, request: ReplayRequest, codec: Codec) -> None:
        self.client = client
        self.codec = codec
        self.request = request
        self.topic = cfg.kafka.topics().trajectories.name
        tag = uuid.uuid4().hex[:12]
        self.stage, self.measured = f"replay_stage_{tag}", f"replay_measured_{tag}"
        self.unique = f"replay_unique_{tag}"
        self.sql = SqlHeuristic(judge_name=request.judge_name, judge_version=request.judge_version,
                                weights=JudgeWeights.from_config(cfg.judge), reward_version=request.reward_version,
                                rollouts_per_group=cfg.judge.rollouts_per_group)
        self.result = ReplayResult()
        self.container = with_source_fields(schema_text(TRAJECTORY))

    def create(self) -> None:
        self._drop_abandoned()
        types = field_types(schema_text(TRAJECTORY), INPUT_FIELDS)
        columns = ", ".join(f"`{name}` {kind}" for name, kind in types.items())
        self.client.command(f"CREATE TABLE {self.stage} ({SOURCE_COLUMNS}, {columns}) ENGINE = {STAGE_ENGINE} "
                            "SETTINGS allow_suspicious_variant_types = 1")

    def _drop_abandoned(self, older_than_s: int = 3600) -> None:
        """Drop the stage tables of replays killed before they could clean up (an hour old or more)."""
        rows = self.client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND match(name, "
            "'^replay_(stage|measured|unique)_[0-9a-f]{12}$') AND metadata_modification_time < now() - "
            f"{older_than_s}").result_rows
        for (name,) in rows:
            self.client.command(f"DROP TABLE IF EXISTS `{name}`")

    def drop(self) -> None:
        for table in (self.stage, self.measured, self.unique):
            self.client.command(f"DROP TABLE IF EXISTS {table}")

    def frame(self, records: Sequence[Record]) -> tuple[list[bytes], list[bytes]]:
        """(container bodies, their raw records): log coordinates + the body in today's schema
        (re-encoded in Python when written with another schema); other records are undecodable."""
        self.result.read += len(records)
        bodies: list[bytes] = []
        kept: list[bytes] = []
        for epoch, partition, offset, raw in records:
            body = self.codec.current_body(raw, self.topic, TRAJECTORY)
            if body is None:
                self.result.undecodable += 1
                continue
            bodies.append(zigzag(epoch) + zigzag(partition) + zigzag(offset) + body)
            kept.append(raw)
        return bodies, kept

    def insert(self, framed: tuple[list[bytes], list[bytes]]) -> None:
        bodies, raws = framed
        self.result.undecodable += len(insert_container(
            self.client, self.stage, self.container, bodies,
            lambda i: None if self.codec.decodes_as(raws[i], TRAJECTORY) else "does not decode"))

    def score(self) -> ReplayResult:
        """Measure every staged record, keep one per session in range, insert judgments and rewards."""
        since = self.request.since
        condition = "1" if since is None else (
            f"completed_at >= toDateTime64({literal(since.strftime('%Y-%m-%d %H:%M:%S.%f'))}, 6, 'UTC')")
        self.client.command(f"CREATE TABLE {self.measured} ENGINE = Memory AS "
                            f"{measure_select(self.stage, condition)}", settings=PARALLEL)
        self.client.command(f"CREATE TABLE {self.unique} ENGINE = Memory AS {unique_select(self.measured)}")
        staged, in_range = self.client.query(
            f"SELECT count(), countIf(in_range = 1) FROM {self.measured}").result_rows[0]
        measured = int(self.client.query(f"SELECT count() FROM {self.unique}").result_rows[0][0])
        self.result.skipped_before_since = int(staged) - int(in_range)
        self.result.duplicates = int(in_range) - measured
        self.client.command(self.sql.judgments(self.unique, self.topic), settings=PARALLEL)
        self.result.judgments = self.result.rescored = measured
        if self.sql.reward_version is not None:
            self.client.command(self.sql.rewards(self.unique, self.topic), settings=PARALLEL)
            self.result.rewards = measured
            self.result.groups = int(self.client.query(
                f"SELECT sum(if(g IS NULL, c, toUInt64(intDiv(c + {self.sql.rollouts_per_group} - 1, "
                f"{self.sql.rollouts_per_group})))) FROM (SELECT group_id AS g, count() AS c FROM {self.unique} "
                "GROUP BY g)").result_rows[0][0] or 0)
        return self.result


async def stage_all(replay: SqlReplay, batches: Any) -> None:
    """Frame batches of at least ``MIN_BATCH`` records while ClickHouse decodes the previous one."""
    inflight: asyncio.Future[None] | None = None
    pending: list[Record] = []

    async def flush() -> None:
        nonlocal inflight
        framed = replay.frame(pending)
        pending.clear()
        if inflight is not None:
            await inflight
        inflight = asyncio.ensure_future(asyncio.to_thread(replay.insert, framed))

    async for records in batches:
        pending.extend(records)
        if len(pending) >= MIN_BATCH:
            await flush()
    if pending:
        await flush()
    if inflight is not None:
        await inflight


async def run_sql_replay(replay: SqlReplay, batches: Any) -> ReplayResult:
    """Create the stage, stage every batch, score, drop the stage; phase timings in the result."""
    started = time.perf_counter()
    phases = replay.result.phases

    async def phase(name: str, work: Any) -> Any:
        begun = time.perf_counter()
        try:
            return await work
        finally:
            phases[name] = round(time.perf_counter() - begun, 3)

    await phase("create", asyncio.to_thread(replay.create))
    try:
        await phase("read_and_stage", stage_all(replay, batches))
        result = await phase("score", asyncio.to_thread(replay.score))
    finally:
        await phase("drop", asyncio.to_thread(replay.drop))
    result.seconds = time.perf_counter() - started
    return result
