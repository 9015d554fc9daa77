"""The sink against the real broker and chDB: exact rows, duplicates dropped, offsets on rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from consumers.sink import ClickHouseSink
from schemas.codec import Codec
from schemas.models import ClosedBy, StepRecorded
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from tests.ingest.helpers import make_tracker, run_agent, scalar


async def _sink_until(sink: ClickHouseSink, store, table: str, expected: int, timeout_s: float = 60) -> None:
    task = asyncio.create_task(sink.run())
    try:
        for _ in range(int(timeout_s * 10)):
            if await asyncio.to_thread(scalar, store, f"SELECT count() FROM {table}") >= expected:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let any (wrong) extra rows land before asserting
    finally:
        sink.stop()
        await task


@pytest.mark.parametrize("in_clickhouse", [True, False], ids=["decoded-by-clickhouse", "decoded-in-python"])
async def test_sink_writes_exact_rows_and_drops_redelivered_duplicates(
        kafka_bootstrap: str, topics: Topics, store, tmp_path: Path, in_clickhouse: bool) -> None:
    registry = tmp_path / "registry.json"
    async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry) as tracker:
        ids = await asyncio.gather(*(run_agent(tracker, a, 10) for a in range(5)))
        await tracker.flush()
    assert not list((tmp_path / "spool").glob("*.spool"))  # close drained the spool and removed it
    await resend_everything(kafka_bootstrap, topics.session_events.name, 60)  # an SDK re-send: doubles nothing
    codec = Codec(LocalRegistry(registry))
    sink = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}sink",
                          decode_in_clickhouse=in_clickhouse)
    await _sink_until(sink, store, "steps", 50)
    assert scalar(store, "SELECT count() FROM steps") == 50
    assert scalar(store, "SELECT count() FROM session_events") == 60
    assert scalar(store, "SELECT count(DISTINCT (session_id, seq)) FROM session_events") == 60
    assert sorted(r[0] for r in store.query("SELECT DISTINCT session_id FROM steps").result_rows) == sorted(ids)
    row = store.query("SELECT tool, action_text, tokens, error, step_metadata['i'], topic, offset >= 0 "
                      "FROM steps WHERE seq = 7 LIMIT 1").result_rows[0]
    assert row == ("tool0", "in 6", 106, "boom", "6", topics.session_events.name, True)
    assert scalar(store, "SELECT sum(tokens) FROM steps") == 5 * sum(100 + i for i in range(10))
    # a second sink in the same group starts from the committed offsets: nothing new
    sink2 = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}sink",
                           decode_in_clickhouse=in_clickhouse)
    await _sink_until(sink2, store, "steps", 51, timeout_s=3)
    assert scalar(store, "SELECT count() FROM steps") == 50
    # a fresh group re-reads everything: every row is dropped as known
    sink3 = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}other",
                           decode_in_clickhouse=in_clickhouse)
    await _sink_until(sink3, store, "steps", 51, timeout_s=3)
    assert scalar(store, "SELECT count() FROM steps") == 50
    assert scalar(store, "SELECT count() FROM session_events") == 60
    if in_clickhouse:  # every copy went to ClickHouse, which kept the first of each key
        assert (sink.stats.landed, sink3.stats.landed, sink.stats.duplicates) == (120, 120, 0)
        # originals fill each partition's first offsets, the resent copies follow: the originals were kept
        per_partition = store.query("SELECT min(offset), max(offset), count() FROM session_events "
                                    "GROUP BY partition").result_rows
        assert all((lo, hi) == (0, n - 1) for lo, hi, n in per_partition)
    else:
        assert sink.stats.duplicates == 110  # the resent copy: 60 session events + 50 steps
        assert sink3.stats.duplicates == 2 * 110  # originals and the resent copy


async def test_clickhouse_outage_backs_off_commits_nothing_and_resumes(
        kafka_bootstrap: str, topics: Topics, clickhouse_dsn: str, database: str, tmp_path: Path) -> None:
    from store.clickhouse import connect
    from store.gateway import ChdbGateway

    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the outage is staged with the chDB gateway")
    path = clickhouse_dsn[len("chdb://"):]
    gateway = ChdbGateway(path, secret="outage-test").start()
    port = int(gateway.url.rsplit(":", 1)[1])
    registry = tmp_path / "registry.json"
    client = connect(gateway.url, database, secret="outage-test")
    sink = ClickHouseSink(kafka_bootstrap, topics, Codec(LocalRegistry(registry)), client,
                          group_id=f"{topics.prefix}sink", max_backoff_s=0.5)
    task = asyncio.create_task(sink.run())
    try:
        async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry) as tracker:
            await asyncio.gather(*(run_agent(tracker, a, 10) for a in range(3)))
        await wait_rows(client, "steps", 30)
        gateway.stop(close_engine=False)  # ClickHouse goes away
        async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry) as tracker:
            await asyncio.gather(*(run_agent(tracker, a, 10) for a in range(3, 6)))
        await asyncio.sleep(3)
        assert sink.stats.retries >= 2 and sink.stats.batches >= 1
        gateway = ChdbGateway(path, port=port, secret="outage-test").start()  # back on the same address
        await wait_rows(client, "steps", 60)
        await asyncio.sleep(1)
    finally:
        sink.stop()
        await task
        gateway.stop(close_engine=False)
    store = connect(clickhouse_dsn, database)
    assert scalar(store, "SELECT count() FROM steps") == 60
    assert scalar(store, "SELECT count(DISTINCT (session_id, seq)) FROM session_events") == 72
    assert scalar(store, "SELECT count() FROM session_events") == 72


async def resend_everything(bootstrap: str, topic: str, expected: int) -> None:
    """Produce every record of ``topic`` once more, same key and bytes, as an SDK re-send does."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"resend-{topic}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        records = []
        async with asyncio.timeout(30):
            while len(records) < expected:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    records += [(m.key, m.value) for m in msgs]
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


async def wait_rows(client, table: str, expected: int, timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s * 4)):
        try:
            if await asyncio.to_thread(scalar, client, f"SELECT count() FROM {table}") >= expected:
                return
        except Exception:  # the store is down in the middle of this test
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"{table} did not reach {expected} rows")


async def test_sink_re_encodes_older_writer_schemas_and_skips_a_corrupt_body(
        kafka_bootstrap: str, topics: Topics, store, tmp_path: Path) -> None:
    import copy
    import io
    import json

    import fastavro
    from aiokafka import AIOKafkaProducer

    from schemas.catalog import raw_schemas
    from schemas.models import SessionCompleted, SessionEvent, SessionStarted, SessionStatus, StepRecorded, UseTool

    registry = LocalRegistry(tmp_path / "registry.json")
    codec = Codec(registry)
    name = topics.session_events.name
    step = SessionEvent(session_id="old", seq=1, agent_name="a", payload=StepRecorded(
        step_number=0, observation="o", thought="t", action=UseTool(tool="calc", input="1+1"), tokens=7, cost=0.5))
    older = copy.deepcopy(raw_schemas()["art.SessionEvent"])  # a writer from before `cost` existed
    step_schema = next(b for b in older["fields"][-1]["type"] if b["name"] == "StepRecorded")
    step_schema["fields"] = [f for f in step_schema["fields"] if f["name"] != "cost"]
    old_id = registry.register(f"{name}-value", json.dumps(older))
    data = codec.decode_dict(codec.encode(name, step))[1]
    data["payload"] = ("art.StepRecorded", {k: v for k, v in data["payload"].items() if k != "cost"})
    data["payload"][1]["action"] = ("art.UseTool", data["payload"][1]["action"])
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(older), data)
    good_start = codec.encode(name, SessionEvent(session_id="old", seq=0, agent_name="a",
                                                 payload=SessionStarted(objective="x", model="m")))
    corrupt = codec.encode(name, step.model_copy(update={"seq": 2}))[:12]  # today's header, cut body
    done = codec.encode(name, SessionEvent(session_id="old", seq=3, agent_name="a",
                                           payload=SessionCompleted(final_answer="2", status=SessionStatus.succeeded)))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in (good_start, b"\x00" + old_id.to_bytes(4, "big") + buf.getvalue(), corrupt, done):
            await producer.send_and_wait(name, value, key=b"old")
    finally:
        await producer.stop()
    sink = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}sink")
    await _sink_until(sink, store, "session_events", 3)
    assert store.query("SELECT seq, kind FROM session_events ORDER BY seq").result_rows == [
        (0, "session_started"), (1, "step_recorded"), (3, "session_completed")]
    assert store.query("SELECT seq, tool, action_text, tokens, cost FROM steps").result_rows == [
        (1, "calc", "1+1", 7, 0.0)]  # read with today's schema: the missing field takes its default
    assert (sink.stats.invalid, sink.stats.landed) == (1, 3)


@pytest.mark.parametrize("in_clickhouse", [True, False], ids=["decoded-by-clickhouse", "decoded-in-python"])
async def test_sink_lands_150_new_keys_and_a_5_kb_session_id_in_one_batch_through_the_gateway(
        kafka_bootstrap: str, topics: Topics, clickhouse_dsn: str, database: str, tmp_path: Path,
        in_clickhouse: bool) -> None:
    """Large bind parameters (known-key lookups of 150 sessions, a 5 KB id) travel as a multipart form:
    once that wedged the sink for good."""
    from aiokafka import AIOKafkaProducer

    from bench.poison import good_session
    from store.clickhouse import connect
    from store.gateway import ChdbGateway
    from streams.assembly import assemble
    from streams.state import fold_many

    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the gateway serves a chDB directory")
    gateway = ChdbGateway(clickhouse_dsn[len("chdb://"):], secret="sink-test").start()
    client = connect(gateway.url, database, secret="sink-test")
    codec = Codec(LocalRegistry(tmp_path / "registry.json"))
    sessions = [good_session(f"many-{i:03d}-{'k' * 30}", 2) for i in range(150)] + [good_session("L" * 5000, 3)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        for events in sessions:  # the events, and the trajectory the stream would make of them
            state = fold_many(None, events, 0.0).state
            steps = {e.seq: e.payload for e in events if isinstance(e.payload, StepRecorded)}
            trajectory = assemble(state, steps, ClosedBy.completed, [])
            key = events[0].session_id.encode()
            for event in events:
                await producer.send(topics.session_events.name, codec.encode(topics.session_events.name, event),
                                    key=key)
            await producer.send(topics.trajectories.name, codec.encode(topics.trajectories.name, trajectory), key=key)
        await producer.flush()
    finally:
        await producer.stop()
    sink = ClickHouseSink(kafka_bootstrap, topics, codec, client, group_id=f"{topics.prefix}sink",
                          decode_in_clickhouse=in_clickhouse, max_backoff_s=0.5)
    try:
        await _sink_until(sink, connect(gateway.url, database, secret="sink-test"), "trajectories", 151)  # own client
    finally:
        gateway.stop(close_engine=False)
    store = connect(clickhouse_dsn, database)
    assert scalar(store, "SELECT count() FROM trajectories") == 151
    assert scalar(store, "SELECT count() FROM steps") == 150 * 2 + 3
    assert scalar(store, "SELECT count() FROM session_events") == 150 * 4 + 5
    assert store.query("SELECT length(session_id), step_count, total_tokens FROM trajectories "
                       "WHERE startsWith(session_id, 'LLL')").result_rows == [(5000, 3, 3)]
    assert sink.stats.retries == 0 and sink.stats.dead_lettered == 0


async def test_records_the_store_cannot_take_are_isolated_and_dead_lettered_in_their_batch(
        kafka_bootstrap: str, topics: Topics, store, tmp_path: Path) -> None:
    """Garbage on a topic the sink alone reads, and a row its column cannot hold (source_partition -1
    into UInt32), go nowhere near a retry loop: the rest of the batch lands and the batch is committed."""
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from schemas.models import DeadLetter, dead_letter_id

    codec = Codec(LocalRegistry(tmp_path / "registry.json"))
    name = topics.dead_letters.name
    letters = [DeadLetter(event_id=dead_letter_id(0, "x", 0, i), source_topic="x", source_partition=0,
                          source_offset=i, raw=b"r", reason=f"reason {i}") for i in range(5)]
    unstorable = letters[2].model_copy(update={"source_partition": -1, "event_id": dead_letter_id(0, "x", 0, 99)})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        for record in [*letters[:2], unstorable, *letters[2:]]:
            await producer.send(name, codec.encode(name, record))
        await producer.send(topics.trajectories.name, b"\x00garbage", key=b"g", partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    sink = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}sink")
    await _sink_until(sink, store, "dead_letters", 6)
    assert sink.stats.retries == 0
    rows = store.query("SELECT source_topic, source_offset, reason FROM dead_letters ORDER BY source_topic, "
                       "source_offset").result_rows
    assert rows[1:] == [("x", i, f"reason {i}") for i in range(5)]
    assert rows[0][:2] == (topics.trajectories.name, 0) and rows[0][2].startswith("unknown schema id")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # the whole batch was committed, the unstorable row included
        committed = await admin.list_consumer_group_offsets(f"{topics.prefix}sink", partitions=[
            TopicPartition(name, 0), TopicPartition(topics.trajectories.name, 0)])
    finally:
        await admin.close()
    assert sorted(o.offset for o in committed.values()) == [1, 6]


@pytest.mark.parametrize("in_clickhouse", [True, False], ids=["decoded-by-clickhouse", "decoded-in-python"])
async def test_a_batch_stores_rewards_first_and_a_trajectory_after_its_steps(
        kafka_bootstrap: str, topics: Topics, store, tmp_path: Path, in_clickhouse: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewards are what a fleet waits for; a trajectory row promises its steps (the trainer joins them)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from schemas.models import RewardAssigned
    from tests.judges.builders import answer, trajectory

    registry = tmp_path / "registry.json"
    codec = Codec(LocalRegistry(registry))
    async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry) as tracker:
        sid = await run_agent(tracker, 0, 3)
        await tracker.flush()
    reward = RewardAssigned(session_id=sid, agent_name="agent-0", group_id="g", reward_version="r@1", total=0.5,
                            success=1.0, efficiency=1.0, quality=0.5, novelty=0.5, confidence=0.9, advantage=0.0)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for topic, record in ((topics.trajectories.name, trajectory([answer("done")], session_id=sid)),
                              (topics.rewards.name, reward)):
            await producer.send_and_wait(topic, codec.encode(topic, record), key=sid.encode())
    finally:
        await producer.stop()
    names = [topics.session_events.name, topics.trajectories.name, topics.rewards.name]
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    batch: dict[TopicPartition, list[Any]] = {}
    try:
        async with asyncio.timeout(30):
            while sum(len(m) for m in batch.values()) < 5 + 2:  # started, 3 steps, completed; trajectory, reward
                for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                    batch.setdefault(tp, []).extend(msgs)
    finally:
        await consumer.stop()
    order: list[str] = []

    def recording(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            table = kwargs["context"].table if kwargs.get("context") else kwargs.get("table") or args[0]
            order.append(table.split(".")[-1].strip("`"))
            return real(*args, **kwargs)
        return call

    for method in ("insert", "raw_insert"):
        monkeypatch.setattr(store, method, recording(getattr(store, method)))
    sink = ClickHouseSink(kafka_bootstrap, topics, codec, store, group_id=f"{topics.prefix}sink",
                          decode_in_clickhouse=in_clickhouse)
    written = sink.write(batch)
    assert (written["rewards"], written["trajectories"], scalar(store, "SELECT count() FROM steps")) == (1, 1, 3)
    events = [i for i, table in enumerate(order) if table not in ("rewards", "trajectories")]
    assert order.index("rewards") < min(events) and max(events) < order.index("trajectories"), order
