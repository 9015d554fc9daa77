"""No input can stall or crash the pipeline: every poison record is dead-lettered, with its reason and
log coordinates, and good sessions around it land exactly and promptly. One stack for the module."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bench.poison import Poisoner, Record, good_session
from schemas.codec import Codec
from schemas.models import SessionEvent
from schemas.registry import registry_for
from tests.ingest.helpers import assert_exact, wait_for
from tests.ingest.stack import RunningStack

pytestmark = pytest.mark.slow
STEPS = 6
TOKENS = sum(range(STEPS))
# what each kind's dead letter says (kinds whose reason depends on where the damage fell are not listed)
REASONS = {
    "truncated": "truncated message", "bad_magic": "bad magic byte", "unknown_schema": "unknown schema id",
    "trailing_bytes": "trailing bytes", "non_finite": "fails validation", "bad_count": "fails validation",
    "bad_seq": "rule violated", "empty_session_id": "rule violated: empty session_id",
    "oversize": "exceeds the limit", "invalid_utf8": "does not decode", "key_mismatch": "record key",
    "wrong_record": "record art.DeadLetter where art.SessionEvent was expected", "unknown_session": "unknown session",
    "after_completion": "event after completion", "conflicting_duplicate": "conflicting duplicate",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("poison")
    with RunningStack(root / "data", env={"ART_STREAM_GAP_TIMEOUT_S": "3",
                                          "ART_STREAM_SESSION_IDLE_TIMEOUT_S": "120"}) as running:
        yield running


class Sender:
    """A raw producer on the stack's session topic: returns each record's (partition, offset)."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.topic = stack.cfg.kafka.topics().session_events.name
        self.codec = Codec(registry_for("", stack.data_dir))

    async def send(self, records: list[Record]) -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.info.bootstrap, max_request_size=4 * 1024 * 1024,
                                    linger_ms=20)
        await producer.start()
        try:
            futures = [await producer.send(self.topic, value, key=key) for key, value in records]
            return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
        finally:
            await producer.stop()

    def events(self, events: list[SessionEvent]) -> list[Record]:
        return [(e.session_id.encode(), self.codec.encode(self.topic, e)) for e in events]


def letters(client: Any, topic: str, coordinates: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Dead letters of records at ``coordinates`` of ``topic``, by (partition, offset)."""
    rows = client.query("SELECT source_partition, source_offset, reason FROM dead_letters FINAL "
                        "WHERE source_topic = {t:String}", parameters={"t": topic}).result_rows
    wanted = set(coordinates)
    return {(p, o): reason for p, o, reason in rows if (p, o) in wanted}


def test_fuzz_of_every_poison_kind_among_good_sessions(stack: RunningStack) -> None:
    sender = Sender(stack)
    rng = random.Random(12)
    good = [good_session(f"fuzz-good-{i:02d}", STEPS) for i in range(20)]
    poisoner = Poisoner(sender.codec, sender.topic, rng, sent=good[:10])
    asyncio.run(sender.send([r for events in good[:10] for r in sender.events(events)]))
    poison = poisoner.mix(2000)
    later = [sender.events(events) for events in good[10:]]
    mixed: list[tuple[str | None, Record]] = list(poison)
    for records in later:  # each good session in order, at random places among the poison
        places = sorted(rng.sample(range(len(mixed) + len(records)), len(records)))
        for place, record in zip(places, records, strict=True):
            mixed.insert(place, (None, record))
    at = asyncio.run(sender.send([record for _, record in mixed]))
    bad = {coordinates: kind for (kind, _), coordinates in zip(mixed, at, strict=True) if kind is not None}
    assert len(bad) == 2000 and set(bad.values()) == set(Poisoner.KINDS)

    client = stack.client()
    assert_exact(client, [e[0].session_id for e in good], STEPS, TOKENS)
    wait_for(lambda: len(letters(client, sender.topic, list(bad))) == len(bad), timeout_s=120)
    time.sleep(2)  # a second letter for any record would land now
    found = letters(client, sender.topic, list(bad))
    assert set(found) == set(bad)  # exactly the poison, each once
    total = client.query("SELECT count() FROM dead_letters FINAL WHERE source_topic = {t:String}",
                         parameters={"t": sender.topic}).result_rows[0][0]
    assert total == len(bad)
    for coordinates, kind in bad.items():
        if kind in REASONS:
            assert REASONS[kind] in found[coordinates], (kind, found[coordinates])
    phantoms = client.query("SELECT count() FROM trajectories WHERE startsWith(session_id, 'bad-')").result_rows
    assert phantoms == [(0,)]  # no unknown or refused session became a trajectory


def test_each_poison_kind_is_followed_by_good_sessions_landing_promptly(stack: RunningStack) -> None:
    sender = Sender(stack)
    client = stack.client()
    rng = random.Random(5)

    def land(tag: str) -> float:
        """Send a good session; seconds until its trajectory is queryable."""
        events = good_session(f"after-{tag}-{rng.getrandbits(32):08x}", STEPS)
        start = time.monotonic()
        asyncio.run(sender.send(sender.events(events)))
        wait_for(lambda: client.query("SELECT count() FROM trajectories WHERE session_id = {s:String}",
                                      parameters={"s": events[0].session_id}).result_rows[0][0], timeout_s=60,
                 interval_s=0.1)
        return time.monotonic() - start

    sources = [good_session(f"source-{i}", STEPS) for i in range(3)]
    asyncio.run(sender.send([r for events in sources for r in sender.events(events)]))
    normal = sorted(land("baseline") for _ in range(3))[1]  # the median of three undisturbed sessions
    poisoner = Poisoner(sender.codec, sender.topic, rng, sent=sources)
    slow = {}
    for kind in Poisoner.KINDS:
        at = asyncio.run(sender.send([poisoner.kind(kind)() for _ in range(3)]))
        seconds = land(kind)
        if seconds > max(3 * normal, normal + 5):
            slow[kind] = round(seconds, 1)
        wait_for(lambda at=at: len(letters(client, sender.topic, at)) == 3, timeout_s=60)
    assert slow == {}, f"good sessions were slowed down (normal {normal:.1f} s): {slow}"


def test_a_5_kb_session_id_lands_exactly(stack: RunningStack) -> None:
    sender = Sender(stack)
    events = good_session("x" * 5000, STEPS)
    asyncio.run(sender.send(sender.events(events)))
    client = stack.client()
    assert_exact(client, [events[0].session_id], STEPS, TOKENS)
    assert client.query("SELECT count() FROM judgments WHERE session_id = {s:String}",
                        parameters={"s": events[0].session_id}).result_rows == [(1,)]
