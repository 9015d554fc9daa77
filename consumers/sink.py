"""The ClickHouse sink: a consumer group that mirrors every topic into tables, exactly.

Exactness on an at-least-once log: rows whose natural key already exists are dropped before the
insert, each insert carries a deterministic deduplication token (a retried insert is a no-op), and
offsets are committed only after ClickHouse has the rows. If ClickHouse is down, the sink backs off
and retries the same batch: nothing is committed, nothing is lost.

Session events, the high-volume topic, are not decoded here: each batch is re-framed into one Avro
container and ClickHouse decodes it, applies the event rules and drops known keys (``store.ingest``).
Python only checks the 5-byte header (and re-encodes records of an older writer schema). Other
topics are decoded here; known keys are remembered per session and looked up for unseen ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from clickhouse_connect.driver.client import Client

from consumers.rows import TABLES_BY_RECORD, TableSpec, rows_for
from schemas.codec import Codec
from schemas.container import with_fields, zigzag
from schemas.errors import CodecError
from schemas.rules import violation_of_dict
from schemas.topics import Topics
from store.ingest import INGEST_FIELDS, ensure_ingest, insert_container

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    inserted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    landed: int = 0  # session events handed to ClickHouse to decode (rows are counted there)
    duplicates: int = 0
    invalid: int = 0
    batches: int = 0
    retries: int = 0


class KnownKeys:
    """Keys already in a table, per group (first key column), for the groups this sink owns."""

    def __init__(self, max_groups: int = 200_000) -> None:
        self.groups: OrderedDict[Any, set[tuple[Any, ...]]] = OrderedDict()
        self.max_groups = max_groups

    def missing(self, groups: set[Any]) -> list[Any]:
        return [g for g in groups if g not in self.groups]

    def add(self, group: Any, rest: tuple[Any, ...]) -> None:
        known = self.groups.get(group)
        if known is None:
            known = self.groups[group] = set()
            if len(self.groups) > self.max_groups:
                self.groups.popitem(last=False)
        else:
            self.groups.move_to_end(group)
        known.add(rest)

    def has(self, group: Any, rest: tuple[Any, ...]) -> bool:
        known = self.groups.get(group)
        return known is not None and rest in known


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.on_change()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.on_change()


class ClickHouseSink:
    """Consumes ``topics`` as group ``group_id`` and writes every record into its tables."""

    def __init__(self, bootstrap: str, topics: Topics, codec: Codec, client: Client, *, group_id: str,
                 log_epoch: int = 0, max_records: int = 20000, poll_ms: int = 100, max_backoff_s: float = 5.0,
                 decode_in_clickhouse: bool = True) -> None:
        self.topics = topics
        self.decode_in_clickhouse = decode_in_clickhouse
        self._landing: tuple[str, str] | None = None  # (landing table, container schema)
        self.codec = codec
        self.client = client
        self.log_epoch = log_epoch
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.max_backoff_s = max_backoff_s
        self.stats = SinkStats()
        self._known: dict[str, KnownKeys] = defaultdict(KnownKeys)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=max_records, session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            max_poll_interval_ms=3_600_000, fetch_max_wait_ms=poll_ms, max_partition_fetch_bytes=8 * 1024 * 1024)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        names = [t.name for t in self.topics.all()]
        await self._consumer.start()
        self._consumer.subscribe(names, listener=_Rebalance(self._known.clear))
        log.info("sink consuming %s", ", ".join(names))
        try:
            while not self._stopping.is_set():
                batch = await self._consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
                if batch:
                    await self._write_with_retry(batch)
        finally:
            await self._consumer.stop()

    async def _write_with_retry(self, batch: dict[TopicPartition, list[Any]]) -> None:
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(self.write, batch)
                break
            except Exception as exc:  # ClickHouse down or refusing: keep the batch, commit nothing
                self.stats.retries += 1
                log.warning("ClickHouse write failed (%s); retrying in %.1f s", exc, delay)
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                    raise  # stopping: leave without committing, the batch will be redelivered
                except TimeoutError:
                    delay = min(delay * 2, self.max_backoff_s)
        await self._consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
        self.stats.batches += 1

    def _landing_table(self) -> tuple[str, str] | None:
        """The ClickHouse-side decoder for the current SessionEvent schema (created on first use)."""
        if self._landing is None and self.decode_in_clickhouse:
            topic = self.topics.session_events.name
            schema_id = self.codec.schema_id(topic, "art.SessionEvent")
            schema = self.codec.registry.schema_by_id(schema_id)
            try:
                table = ensure_ingest(self.client, schema, schema_id)
            except Exception as exc:  # e.g. a ClickHouse without Variant: decode here instead
                if "Code:" not in str(exc):
                    raise  # not an answer from ClickHouse (unreachable): retry the batch later
                log.warning("ClickHouse cannot decode session events (%s); decoding them in Python", exc)
                self.decode_in_clickhouse = False
                return None
            self._landing = (table, with_fields(schema, INGEST_FIELDS))
        return self._landing

    def _land(self, landing: tuple[str, str], parts: list[tuple[TopicPartition, list[Any]]]) -> None:
        """Frame session events into one container; ClickHouse decodes, checks and stores them."""
        table, container = landing
        session_topic = self.topics.session_events.name
        bodies: list[bytes] = []
        sources: list[bytes] = []
        for tp, messages in parts:
            topic = tp.topic.encode()
            prefix = zigzag(self.log_epoch) + zigzag(len(topic)) + topic + zigzag(tp.partition)
            for msg in messages:
                raw = msg.value
                body = self.codec.current_body(raw, session_topic, "art.SessionEvent")
                if body is None:
                    self.stats.invalid += 1  # the stream dead-letters bad session events
                    continue
                bodies.append(prefix + zigzag(msg.offset) + zigzag(len(raw)) + raw + body)
                sources.append(raw)
        left_out = insert_container(self.client, table, container, bodies, sources,
                                    lambda raw: self.codec.decodes_as(raw, "art.SessionEvent"))
        self.stats.invalid += left_out
        self.stats.landed += len(bodies) - left_out

    def write(self, batch: dict[TopicPartition, list[Any]]) -> dict[str, int]:
        """Decode, drop known keys, insert per table. Synchronous: runs in a worker thread."""
        rows: dict[str, list[list[Any]]] = defaultdict(list)
        specs: dict[str, TableSpec] = {}
        ranges: list[str] = []
        session_topic = self.topics.session_events.name
        landing = self._landing_table()
        if landing is not None:
            sessions = sorted((tp, m) for tp, m in batch.items() if tp.topic == session_topic)
            self._land(landing, sessions)
            batch = {tp: m for tp, m in batch.items() if tp.topic != session_topic}
        for tp, messages in sorted(batch.items()):
            ranges.append(f"{tp.topic}/{tp.partition}/{messages[0].offset}-{messages[-1].offset}")
            for msg in messages:
                try:
                    name, data = self.codec.decode_dict(msg.value)
                except CodecError:
                    self.stats.invalid += 1  # the stream dead-letters bad session events
                    continue
                if tp.topic == session_topic and (name != "art.SessionEvent" or violation_of_dict(data)):
                    self.stats.invalid += 1
                    continue
                src = (self.log_epoch, tp.topic, tp.partition, msg.offset)
                for spec in TABLES_BY_RECORD.get(name, ()):
                    row = rows_for(spec, data, msg.value, src)
                    if row is not None:
                        rows[spec.name].append(row)
                        specs[spec.name] = spec
        token_base = hashlib.sha256(f"{self.log_epoch}|{'|'.join(ranges)}".encode()).hexdigest()[:32]
        written: dict[str, int] = {}
        for name, table_rows in rows.items():
            fresh = self._drop_known(specs[name], table_rows)
            if fresh:
                # column-oriented: clickhouse-connect's row transposition costs more than zip(*rows)
                self.client.insert(name, list(zip(*fresh, strict=True)), column_names=list(specs[name].columns),
                                   column_oriented=True,
                                   settings={"insert_deduplication_token": f"{name}:{token_base}"})
                for row in fresh:
                    key = specs[name].key_of(row)
                    self._known[name].add(key[0], key[1:])
                self.stats.inserted[name] += len(fresh)
            written[name] = len(fresh)
        return written

    def _drop_known(self, spec: TableSpec, rows: list[list[Any]]) -> list[list[Any]]:
        known = self._known[spec.name]
        groups = {spec.key_of(r)[0] for r in rows}
        missing = known.missing(groups)
        if missing:
            first = spec.key[0]
            kind = "UUID" if first == "event_id" else "String"
            result = self.client.query(
                f"SELECT {', '.join(spec.key)} FROM {spec.name} WHERE {first} IN {{groups:Array({kind})}}",
                parameters={"groups": missing})
            for g in missing:
                known.groups.setdefault(g, set())
            for existing in result.result_rows:
                known.add(existing[0], tuple(existing[1:]))
        fresh: list[list[Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            key = spec.key_of(row)
            if key in seen or known.has(key[0], key[1:]):
                self.stats.duplicates += 1
                continue
            seen.add(key)
            fresh.append(row)
        return fresh


def log_progress(sink: ClickHouseSink, every_s: float = 10.0) -> Callable[[], None]:
    """A callable the runner invokes periodically to log throughput."""
    last = [time.monotonic(), 0]

    def tick() -> None:
        now, total = time.monotonic(), sum(sink.stats.inserted.values()) + sink.stats.landed
        if now - last[0] >= every_s:
            log.info("sink: %d rows (+%d), %d duplicates dropped, %d invalid", total, total - last[1],
                     sink.stats.duplicates, sink.stats.invalid)
            last[:] = [now, total]

    return tick
