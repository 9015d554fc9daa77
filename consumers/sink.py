"""The ClickHouse sink: a consumer group that mirrors every topic into tables, exactly.

Exactness on an at-least-once log: rows whose natural key already exists are dropped before the
insert, each insert carries a deterministic deduplication token (a retried insert is a no-op), and
offsets are committed only after ClickHouse has the rows. If ClickHouse is down, the sink backs off
and retries the same batch: nothing is committed, nothing is lost. If ClickHouse refuses part of a
batch, that part is isolated and dead-lettered (``consumers.refusals``) and the rest goes in: no
record can hold back the ones behind it.

Session events, the high-volume topic, are not decoded here: each batch is re-framed into one Avro
container and ClickHouse decodes it, applies the verdict of ``schemas.rules.admit`` (as generated
SQL) and drops known keys (``store.ingest``); what it refuses the stream dead-letters. Python only
checks the 5-byte header and the size (and re-encodes records of an older writer schema). Other
topics are decoded here; known keys are remembered per session and looked up for unseen ones;
records that do not decode are dead-lettered here.

After each commit the sink publishes what it has stored (``on_commit``): on the embedded broker
that watermark is what makes an SDK event durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from clickhouse_connect.driver.client import Client

from consumers.refusals import Inserter, Source, dead_letter_row
from consumers.rows import DEAD_LETTERS, SESSION_EVENTS, STEPS, TABLES_BY_RECORD, TRAJECTORIES, TableSpec, rows_for
from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.limits import MAX_MESSAGE_BYTES
from schemas.rules import Refused, admit, size_violation
from schemas.topics import Topics
from store.ingest import container_schema, ensure_ingest, frame, frame_prefix, insert_container

OnCommit = Callable[[int, dict[str, dict[int, int]]], None]  # (log epoch, topic -> partition -> next offset)

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    inserted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    landed: int = 0  # session events handed to ClickHouse to decode (rows are counted there)
    duplicates: int = 0
    invalid: int = 0
    batches: int = 0
    retries: int = 0
    dead_lettered: int = 0  # records this sink refused itself (the stream refuses bad session events)


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


def landing_body(codec: Codec, topic: str, raw: bytes | None) -> bytes | None:
    """The Avro body to land for ClickHouse to decode, or None when Python refuses the record outright
    (too large, not a framed SessionEvent of a known schema)."""
    if raw is None or size_violation(raw):
        return None
    return codec.current_body(raw, topic, "art.SessionEvent")


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
                 decode_in_clickhouse: bool = True, on_commit: OnCommit | None = None) -> None:
        self.topics = topics
        self.decode_in_clickhouse = decode_in_clickhouse
        self._landing: tuple[str, str] | None = None  # (landing table, container schema)
        self.codec = codec
        self.client = client
        self._inserter = Inserter(client)
        self.log_epoch = log_epoch
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.max_backoff_s = max_backoff_s
        self.stats = SinkStats()
        self.on_commit = on_commit
        self._committed: dict[str, dict[int, int]] = {}  # topic -> partition -> next offset stored
        self._known: dict[str, KnownKeys] = defaultdict(KnownKeys)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=max_records, session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            max_poll_interval_ms=3_600_000, fetch_max_wait_ms=poll_ms, max_partition_fetch_bytes=MAX_MESSAGE_BYTES)
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
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
        await self._consumer.commit(offsets)
        self.stats.batches += 1
        if self.on_commit is not None:
            for tp, offset in offsets.items():
                self._committed.setdefault(tp.topic, {})[tp.partition] = offset
            self.on_commit(self.log_epoch, {t: dict(p) for t, p in self._committed.items()})

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
            self._landing = (table, container_schema(schema))
        return self._landing

    def _verdict(self, key: bytes | None, raw: bytes) -> str | None:
        try:
            admit(self.codec, key or b"", raw)
        except Refused as exc:
            return str(exc)
        return None

    def _land(self, landing: tuple[str, str], parts: list[tuple[TopicPartition, list[Any]]]) -> list[list[Any]]:
        """Frame session events into one container; ClickHouse decodes, checks and stores them.
        Returns dead-letter rows for records only ClickHouse refused (the stream refuses the rest)."""
        table, container = landing
        session_topic = self.topics.session_events.name
        check = os.urandom(8)  # follows each body: a body with trailing bytes misreads it (store.ingest)
        bodies: list[bytes] = []
        kept: list[tuple[Source, bytes | None]] = []
        for tp, messages in parts:
            prefix = frame_prefix(self.log_epoch, tp.topic, tp.partition)
            for msg in messages:
                raw, key = msg.value, msg.key or b""
                body = landing_body(self.codec, session_topic, raw)
                if body is None:
                    self.stats.invalid += 1  # the stream dead-letters bad session events
                    continue
                bodies.append(frame(prefix, msg.offset, key, raw, body, check))
                kept.append(((tp.topic, tp.partition, msg.offset, raw), key))
        left_out = insert_container(self.client, table, container, bodies,
                                    lambda i: self._verdict(kept[i][1], kept[i][0][3]))
        self.stats.invalid += len(left_out)
        self.stats.landed += len(bodies) - len(left_out)
        return [dead_letter_row(self.log_epoch, kept[i][0], reason) for i, reason in left_out.items()
                if reason.startswith("ClickHouse refused")]  # what Python refuses, the stream dead-letters

    def write(self, batch: dict[TopicPartition, list[Any]]) -> dict[str, int]:
        """Decode, drop known keys, insert per table. Synchronous: runs in a worker thread."""
        rows: dict[str, list[list[Any]]] = defaultdict(list)
        sources: dict[str, list[Source]] = defaultdict(list)
        specs: dict[str, TableSpec] = {DEAD_LETTERS.name: DEAD_LETTERS}
        letters: list[list[Any]] = []
        ranges: list[str] = []
        session_topic = self.topics.session_events.name
        landing = self._landing_table()
        sessions: list[tuple[TopicPartition, list[Any]]] = []
        if landing is not None:
            sessions = sorted((tp, m) for tp, m in batch.items() if tp.topic == session_topic)
            batch = {tp: m for tp, m in batch.items() if tp.topic != session_topic}
        for tp, messages in sorted(batch.items()):
            ranges.append(f"{tp.topic}/{tp.partition}/{messages[0].offset}-{messages[-1].offset}")
            for msg in messages:
                source = (tp.topic, tp.partition, msg.offset, msg.value or b"")
                if tp.topic == session_topic and self._verdict(msg.key, msg.value) is not None:
                    self.stats.invalid += 1  # the stream dead-letters it
                    continue
                try:
                    name, data = self.codec.decode_dict(msg.value)
                except CodecError as exc:
                    letters.append(dead_letter_row(self.log_epoch, source, str(exc)))
                    continue
                src = (self.log_epoch, tp.topic, tp.partition, msg.offset)
                for spec in TABLES_BY_RECORD.get(name, ()):
                    row = rows_for(spec, data, msg.value, src)
                    if row is not None:
                        rows[spec.name].append(row)
                        sources[spec.name].append(source)
                        specs[spec.name] = spec
        token_base = hashlib.sha256(f"{self.log_epoch}|{'|'.join(ranges)}".encode()).hexdigest()[:32]
        if SESSION_EVENTS.name in rows:
            self._drop_after_completion(rows, sources)
        written: dict[str, int] = {}
        # Order: judgments and rewards first (what a fleet waits for), then the session events (the slowest
        # insert), then trajectories: a reader that sees a trajectory row sees its steps (the trainer's windows).
        events = (SESSION_EVENTS.name, STEPS.name)
        for name in [n for n in rows if n not in (*events, TRAJECTORIES.name, DEAD_LETTERS.name)]:
            written[name] = self._insert(specs[name], rows[name], sources[name], f"{name}:{token_base}", letters)
        if landing is not None and sessions:
            letters += self._land(landing, sessions)
        for name in [n for n in (*events, TRAJECTORIES.name) if n in rows]:
            written[name] = self._insert(specs[name], rows[name], sources[name], f"{name}:{token_base}", letters)
        dead = DEAD_LETTERS.name
        rows[dead] += letters
        sources[dead] += [(r[1], r[2], r[3], r[4]) for r in letters]
        self.stats.dead_lettered += len(letters)
        written[dead] = self._insert(DEAD_LETTERS, rows[dead], sources[dead], f"{dead}:{token_base}", letters)
        return written

    def _insert(self, spec: TableSpec, rows: list[list[Any]], sources: list[Source], token: str,
                letters: list[list[Any]]) -> int:
        """Insert the rows not stored yet; rows ClickHouse refuses become dead letters (``letters``)."""
        fresh = self._drop_known(spec, list(zip(rows, sources, strict=True)))
        if not fresh:
            return 0
        refused = self._inserter.insert(spec.name, spec.columns, [r for r, _ in fresh], token)
        for i, (row, source) in enumerate(fresh):
            if i in refused:
                if spec is not DEAD_LETTERS:
                    letters.append(dead_letter_row(self.log_epoch, source, refused[i]))
                continue
            key = spec.key_of(row)
            self._known[spec.name].add(key[0], key[1:])
        self.stats.inserted[spec.name] += len(fresh) - len(refused)
        return len(fresh) - len(refused)

    def _drop_after_completion(self, rows: dict[str, list[list[Any]]], sources: dict[str, list[Source]]) -> None:
        """Events after their session's completion are not stored (the stream dead-letters them)."""
        done: dict[str, int] = {}
        for row in rows[SESSION_EVENTS.name]:
            if row[3] == "session_completed":
                done[row[0]] = min(done.get(row[0], row[1]), row[1])
        ids = sorted({r[0] for r in rows[SESSION_EVENTS.name]})
        for sid, seq in self.client.query(
                "SELECT session_id, min(seq) FROM session_events WHERE kind = 'session_completed' "
                "AND session_id IN {ids:Array(String)} GROUP BY session_id", parameters={"ids": ids}).result_rows:
            done[sid] = min(done.get(sid, seq), seq)
        for name in (SESSION_EVENTS.name, STEPS.name):
            keep = [i for i, r in enumerate(rows.get(name, [])) if r[1] <= done.get(r[0], r[1])]
            rows[name] = [rows[name][i] for i in keep]
            sources[name] = [sources[name][i] for i in keep]

    def _drop_known(self, spec: TableSpec, rows: list[tuple[list[Any], Source]]) -> list[tuple[list[Any], Source]]:
        known = self._known[spec.name]
        groups = {spec.key_of(r)[0] for r, _ in rows}
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
        fresh: list[tuple[list[Any], Source]] = []
        seen: set[tuple[Any, ...]] = set()
        for row, source in rows:
            key = spec.key_of(row)
            if key in seen or known.has(key[0], key[1:]):
                self.stats.duplicates += 1
                continue
            seen.add(key)
            fresh.append((row, source))
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
