"""Avro object containers built by byte concatenation read back exactly (fastavro and ClickHouse)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from bench.replay import make_trajectory
from schemas.catalog import schema_text
from schemas.codec import Codec
from schemas.container import clickhouse_type, field_types, object_container, with_source_fields, zigzag
from schemas.registry import LocalRegistry


@pytest.mark.parametrize(("n", "encoded"), [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"),
                                            (64, b"\x80\x01"), (2**40, b"\x80\x80\x80\x80\x80\x40")])
def test_zigzag_matches_the_avro_spec(n: int, encoded: bytes) -> None:
    assert zigzag(n) == encoded
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "long"}, n)
    assert buf.getvalue() == encoded


def test_wrapper_container_reads_back_with_the_log_coordinates() -> None:
    codec = Codec(LocalRegistry())
    raws = [codec.encode("t", make_trajectory(i)) for i in range(5)]
    bodies = [zigzag(7) + zigzag(i % 2) + zigzag(1000 + i) + raw[5:] for i, raw in enumerate(raws)]
    blob = object_container(with_source_fields(schema_text("art.TrajectoryCompleted")), bodies)
    got = list(fastavro.reader(io.BytesIO(blob)))
    assert [(r["src_epoch"], r["src_partition"], r["src_offset"]) for r in got] == [
        (7, i % 2, 1000 + i) for i in range(5)]
    want = [codec.decode_dict(raw)[1] for raw in raws]
    assert [{k: v for k, v in r.items() if not k.startswith("src_")} for r in got] == want


def test_current_body_passes_todays_records_and_re_encodes_older_ones(tmp_path: Any) -> None:
    registry = LocalRegistry(tmp_path / "r.json")
    codec = Codec(registry)
    traj = make_trajectory(3)
    today = codec.encode("t", traj)
    assert codec.current_body(today, "t", "art.TrajectoryCompleted") == today[5:]
    older = json.loads(schema_text("art.TrajectoryCompleted"))  # an older writer: no agent_config yet
    older["fields"] = [f for f in older["fields"] if f["name"] != "agent_config"]
    old_id = registry.register("t-value", json.dumps(older))
    data = codec.decode_dict(today)[1]
    del data["agent_config"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(registry.schema_by_id(old_id))), data)
    old_raw = b"\x00" + old_id.to_bytes(4, "big") + buf.getvalue()
    assert codec.current_body(old_raw, "t", "art.TrajectoryCompleted") == today[5:]
    assert codec.current_body(b"\x01junk", "t", "art.TrajectoryCompleted") is None
    assert codec.current_body(b"\x00\x00\x00\x00\x07body", "t", "art.TrajectoryCompleted") is None  # unknown id
    assert codec.current_body(today, "t", "art.SessionEvent") is None  # another record type


def test_clickhouse_types_follow_the_avro_schema(store: Any) -> None:
    assert clickhouse_type(["null", "string"]) == "Nullable(String)"
    assert clickhouse_type({"type": "array", "items": {"type": "map", "values": "long"}}) == "Array(Map(String, Int64))"
    assert clickhouse_type({"type": "long", "logicalType": "timestamp-micros"}) == "DateTime64(6, 'UTC')"
    ocf = object_container(schema_text("art.TrajectoryCompleted"), [codec_body(i) for i in range(3)])
    steps = field_types(schema_text("art.TrajectoryCompleted"), ["steps"])["steps"]
    store.command(f"CREATE TABLE ocf (session_id String, steps {steps}, status Nullable(String)) ENGINE = Memory "
                  "SETTINGS allow_suspicious_variant_types = 1")
    store.raw_insert("ocf", None, ocf, fmt="Avro")
    got = store.query("SELECT session_id, length(steps), "
                      "variantElement(steps[5].step.action, 'Tuple(kind String, text String)').text, "
                      "status FROM ocf ORDER BY session_id").result_rows
    assert got == [(f"bench-{i}", 5, f"done {i}", "succeeded" if i % 5 else "failed") for i in range(3)]


def codec_body(i: int) -> bytes:
    return Codec(LocalRegistry()).encode("t", make_trajectory(i))[5:]
