"""The tracking SDK on the real broker: sync wrapper, spool framing, outage spooling, backpressure."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from agents.spool import Spool, orphaned_spools
from agents.sync_tracking import SyncTracker
from schemas.codec import Codec
from schemas.models import SessionEvent, SessionStatus, StepRecorded, Think, UseTool
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from stack.broker import free_port
from tests.ingest.helpers import make_tracker


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[SessionEvent]:
    """Every event on ``topic``; also checks each sits on the partition Kafka's default partitioner picks."""
    codec = Codec(LocalRegistry())
    partitioner = DefaultPartitioner()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"check-{topic}")
    await consumer.start()
    out: list[SessionEvent] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(out) < expected:
                for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                    ids = sorted(consumer.partitions_for_topic(topic) or [])
                    assert all(partitioner(m.key, ids, ids) == tp.partition for m in msgs)
                    out.extend(codec.decode(m.value, expect=SessionEvent) for m in msgs)
    finally:
        await consumer.stop()
    return out


def test_sync_tracker_records_in_order(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    tracker = make_tracker(kafka_bootstrap, topics, tmp_path / "spool", tmp_path / "reg.json")
    with SyncTracker(tracker) as sync:
        session = sync.start_session(agent_name="sync", objective="o", model="m", group_id="g")
        seqs = [session.record_step(observation="o", thought="t", action=UseTool(tool="calc", input=str(i)),
                                    tokens=i, error="bad" if i == 1 else None) for i in range(3)]
        session.complete("x", SessionStatus.succeeded)
        assert seqs == [1, 2, 3]
        assert (session.metadata.total_tokens, session.metadata.error_count, session.metadata.tools_used) == (
            3, 1, ["calc"])
    events = asyncio.run(consume_all(kafka_bootstrap, topics.session_events.name, 5))
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert [e.payload.kind for e in events] == ["session_started"] + ["step_recorded"] * 3 + ["session_completed"]
    assert len({e.event_id for e in events}) == 5 and {e.session_id for e in events} == {session.session_id}


def test_spool_frames_survive_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    assert orphaned_spools(tmp_path) == []  # its owner holds the lock
    spool.append(b"k1", b"v1")
    spool.append(b"k2", b"v2" * 100)
    spool.close(remove_if_empty=False)
    with open(spool.path, "ab") as f:
        f.write(b"\x00\x00\x00\x01\x00\x00")  # a write cut short by a kill
    (adopted,) = orphaned_spools(tmp_path)
    assert list(adopted.frames()) == [(b"k1", b"v1"), (b"k2", b"v2" * 100)]
    assert list(adopted.frames(1)) == [(b"k2", b"v2" * 100)]
    assert orphaned_spools(tmp_path) == []  # the lock is held by `adopted` now
    adopted.clear()
    adopted.close()
    assert list(tmp_path.iterdir()) == []


async def test_unreachable_broker_spools_then_a_new_tracker_resends(
        kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    spool_dir = tmp_path / "spool"
    offline = make_tracker(dead, topics, spool_dir, tmp_path / "reg.json", request_timeout_ms=500,
                           retry_interval_s=0.2)
    await offline.start()
    session = await offline.start_session(agent_name="offline", objective="o")
    for i in range(4):
        await session.record_step(observation="", thought="", action=Think(note=str(i)))
    await session.complete(None, SessionStatus.failed)
    await offline.flush(10)
    assert offline.spooled_pending == 6 and offline.sent == 0
    await offline.close(timeout_s=1)
    assert len(list(spool_dir.glob("*.spool"))) == 1  # kept on disk: nothing lost
    online = make_tracker(kafka_bootstrap, topics, spool_dir, tmp_path / "reg.json")
    async with online:
        await asyncio.sleep(0.5)
        await online.flush(10)
    events = await consume_all(kafka_bootstrap, topics.session_events.name, 6)
    assert [e.seq for e in events] == list(range(6))
    assert isinstance(events[2].payload, StepRecorded) and events[2].payload.action == Think(note="1")
    assert not list(spool_dir.glob("*.spool"))


async def test_backpressure_bounds_the_queue(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    tracker = make_tracker(kafka_bootstrap, topics, tmp_path / "spool", max_pending=10)
    async with tracker:
        session = await tracker.start_session(agent_name="bp", objective="o")
        peak = 0
        for i in range(300):
            await session.record_step(observation="x" * 100, thought="", action=Think(note=str(i)))
            peak = max(peak, tracker.delivery.queue.qsize())
        await tracker.flush(30)
        assert peak <= 10 and tracker.sent == 301


async def test_the_sdk_refuses_what_the_pipeline_would_refuse_before_it_takes_a_seq(
        kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    import pytest
    from pydantic import ValidationError

    from agents.tracking import TrackingError
    from schemas.limits import MAX_EVENT_BYTES

    async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool") as tracker:
        session = await tracker.start_session(agent_name="strict", objective="o")
        with pytest.raises(TrackingError, match=f"exceeds the limit of {MAX_EVENT_BYTES} bytes per session event"):
            await session.record_step(observation="x" * MAX_EVENT_BYTES, thought="", action=Think())
        with pytest.raises(ValidationError, match="finite number"):
            await session.record_step(observation="", thought="", action=Think(), cost=float("nan"))
        with pytest.raises(ValidationError, match="less than or equal"):
            await session.record_step(observation="", thought="", action=Think(), tokens=10**15)
        assert await session.record_step(observation="fine", thought="", action=Think()) == 1  # no seq was lost
        await session.complete("ok", SessionStatus.succeeded)
    events = await consume_all(kafka_bootstrap, topics.session_events.name, 3)
    assert [(e.seq, e.payload.kind) for e in events] == [(0, "session_started"), (1, "step_recorded"),
                                                         (2, "session_completed")]


async def test_an_oversize_event_in_an_adopted_spool_is_set_aside_and_the_rest_is_sent(
        kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    """A spool written by an SDK without today's size check must not stop every later tracker."""
    from bench.poison import good_session
    from schemas.limits import MAX_EVENT_BYTES

    codec = Codec(LocalRegistry(tmp_path / "reg.json"))
    events = good_session("spooled-big", 2)
    frames = [(e.session_id.encode(), codec.encode(topics.session_events.name, e)) for e in events]
    big = (b"spooled-big", frames[1][1] + b"x" * MAX_EVENT_BYTES)
    spool_dir = tmp_path / "spool"
    old = Spool.create(spool_dir)
    old.append_many([frames[0], big, *frames[1:]])
    old.close(remove_if_empty=False)  # its tracker died: the lock is free
    async with make_tracker(kafka_bootstrap, topics, spool_dir, tmp_path / "reg.json") as tracker:
        assert await tracker.wait_durable(10)
        assert tracker.delivery.stats.rejected == 1
    sent = await consume_all(kafka_bootstrap, topics.session_events.name, len(events))
    assert [e.seq for e in sent] == [0, 1, 2, 3]
    assert not list(spool_dir.glob("*.spool"))
    (aside,) = (spool_dir / "rejected").glob("*.spool")
    assert list(Spool.adopt(aside).frames()) == [big]  # type: ignore[union-attr]
