"""Python and ClickHouse refuse the same session-event records: the stream's ``admit`` and the sink's
landing views (generated SQL) never disagree, so what the stream dead-letters is never mirrored and
what it applies always is. Checked on every poison kind and on thousands of random bit flips."""

from __future__ import annotations

import os
import random
from typing import Any

from bench.poison import Poisoner, good_session
from consumers.sink import landing_body
from schemas.codec import Codec
from schemas.container import object_container
from schemas.models import SessionEvent
from schemas.registry import LocalRegistry
from schemas.rules import Refused, admit
from store.ingest import container_schema, ensure_ingest, frame, frame_prefix

TOPIC = "art.session-events"


def verdict(codec: Codec, key: bytes, raw: bytes) -> str | None:
    try:
        admit(codec, key, raw)
    except Refused as exc:
        return str(exc)
    return None


def land(store: Any, codec: Codec, records: list[tuple[bytes, bytes]]) -> tuple[dict[int, str | None], set[int]]:
    """Python's verdict on each record, and the offsets ClickHouse stores of them.

    The sink sends a batch as one container; when ClickHouse cannot decode it, the records Python
    refuses are left out, so only records ClickHouse decodes can ever disagree. Each record Python
    refuses is decoded alone (a landing table without views: fast); the ones that decode then go
    through the landing views one by one, followed by the good sentinel exactly as decoded, and all the
    ones Python accepts together. (Once, two refused bodies that each decoded alone made one
    container ClickHouse could not read: the bytes of one misread the next.)"""
    schema_id = codec.schema_id(TOPIC, "art.SessionEvent")
    schema = codec.registry.schema_by_id(schema_id)
    table, container = ensure_ingest(store, schema, schema_id), container_schema(schema)
    store.command(f"CREATE TABLE IF NOT EXISTS decode_only AS {table} ENGINE = Null "
                  "SETTINGS allow_suspicious_variant_types = 1")
    check, prefix = os.urandom(8), frame_prefix(0, TOPIC, 0)
    verdicts = {i: verdict(codec, key, raw) for i, (key, raw) in enumerate(records)}
    bodies = {i: frame(prefix, i, key, raw, body, check) for i, (key, raw) in enumerate(records)  # the sink's
              if (body := landing_body(codec, TOPIC, raw)) is not None}                             # first look

    good_event = good_session("sentinel", 1)[1]
    good_raw = codec.encode(TOPIC, good_event)
    sentinel = frame(prefix, -1, b"sentinel", good_raw, good_raw[5:], check)

    def decodes(i: int) -> bool:
        """Alone, followed by a good record (as inside a batch: bytes left over would misread it)."""
        try:
            store.raw_insert("decode_only", None, object_container(container, [bodies[i], sentinel]), fmt="Avro")
        except Exception:
            return False
        return True

    accepted = [i for i in bodies if verdicts[i] is None]
    if accepted:
        store.raw_insert(table, None, object_container(container, [bodies[i] for i in accepted]), fmt="Avro")
    for i in bodies:  # each as it was decoded: two refused bodies in one container can misread each other
        if verdicts[i] is not None and decodes(i):
            store.raw_insert(table, None, object_container(container, [bodies[i], sentinel]), fmt="Avro")
    return verdicts, {r[0] for r in store.query("SELECT offset FROM session_events").result_rows}


def disagreements(verdicts: dict[int, str | None], stored: set[int]) -> list[tuple[int, str | None]]:
    return [(i, v) for i, v in verdicts.items() if (i in stored) != (v is None)]


RECORD_KINDS = [k for k in Poisoner.KINDS if k not in ("unknown_session", "after_completion",
                                                       "conflicting_duplicate")]  # those are the fold's verdicts


def test_every_poison_kind_is_refused_by_both(store: Any) -> None:
    codec = Codec(LocalRegistry())
    poisoner = Poisoner(codec, TOPIC, random.Random(7), sent=[good_session(f"src-{i}", 4) for i in range(3)])
    kinds = [kind for kind in RECORD_KINDS for _ in range(20)]
    verdicts, stored = land(store, codec, [poisoner.kind(kind)() for kind in kinds])
    accepted = [kinds[i] for i, v in verdicts.items() if v is None]
    assert set(accepted) <= {"bit_flip"}  # a flip may leave a valid record: then both must agree
    assert disagreements(verdicts, stored) == []


def test_random_bit_flips_get_the_same_verdict(store: Any) -> None:
    codec = Codec(LocalRegistry())
    rng = random.Random(2026)
    records = []
    for n in range(1500):
        events: list[SessionEvent] = good_session(f"s{n}", 4)
        event = rng.choice(events)
        raw = bytearray(codec.encode(TOPIC, event))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            raw[rng.randrange(5, len(raw))] ^= 1 << rng.randrange(8)
        records.append((event.session_id.encode(), bytes(raw) + (rng.randbytes(1) if rng.random() < 0.05 else b"")))
    verdicts, stored = land(store, codec, records)
    accepted = sum(v is None for v in verdicts.values())
    assert 150 < accepted < 1350  # both outcomes are exercised
    assert disagreements(verdicts, stored) == []


def test_good_records_land_as_python_reads_them(store: Any) -> None:
    codec = Codec(LocalRegistry())
    events = good_session("fine", 5)
    verdicts, stored = land(store, codec, [(e.session_id.encode(), codec.encode(TOPIC, e)) for e in events])
    assert all(v is None for v in verdicts.values()) and stored == set(range(len(events)))
    assert store.query("SELECT seq, observation, tokens, cost FROM steps ORDER BY seq").result_rows == [
        (i + 1, f"o{i}", i, 0.5) for i in range(5)]
