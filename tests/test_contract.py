"""The Avro files are the contract: models mirror them, the codec round-trips byte-exactly."""

from __future__ import annotations

import copy
import io
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import fastavro
import pytest
from pydantic import BaseModel

from schemas import models as m
from schemas.catalog import AVRO_DIR, SCHEMA_FILES, parsed_schema, raw_schemas, schema_text
from schemas.codec import MODEL_BY_NAME, Codec, compiled_writer, model_writer, to_avro
from schemas.errors import BadMagicByte, InvalidRecord, TruncatedMessage, UnknownSchemaId
from schemas.registry import LocalRegistry, schema_id_for

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def sample_step(n: int = 0) -> m.StepRecorded:
    return m.StepRecorded(
        step_number=n, observation="obs", thought="I should compute", action=m.UseTool(tool="calculator", input="2+2"),
        action_input="2+2", tool_result="4", reflection="fine", step_reward=0.5, step_metadata={"k": "v"},
        timestamp=T0, execution_time_ms=12, tokens=42, cost=0.001,
        completions=[m.CompletionTrace(purpose="decide", model="m-1", token_ids=[5, 70_000, 3],
                                       logprobs=[-0.25, -1.5, -0.1])])


def samples() -> list[m.AvroModel]:
    sid = "sess-1"
    uid = UUID("12345678-1234-5678-1234-567812345678")
    return [
        m.SessionEvent(event_id=uid, session_id=sid, seq=0, ts=T0, agent_name="a", payload=m.SessionStarted(
            objective="add", group_id="g", model="tiny", agent_config={"x": "1"}, success_criteria=["4"])),
        m.SessionEvent(event_id=uid, session_id=sid, seq=1, ts=T0, agent_name="a", payload=sample_step()),
        m.SessionEvent(event_id=uid, session_id=sid, seq=2, ts=T0, agent_name="a", payload=m.StepRecorded(
            step_number=1, observation="", thought="", action=m.Think(), timestamp=T0)),
        m.SessionEvent(event_id=uid, session_id=sid, seq=3, ts=T0, agent_name="a", payload=m.StepRecorded(
            step_number=2, observation="", thought="", action=m.Ask(question="why?"), timestamp=T0)),
        m.SessionEvent(event_id=uid, session_id=sid, seq=4, ts=T0, agent_name="a",
                       payload=m.SessionCompleted(final_answer="4", status=m.SessionStatus.succeeded)),
        m.TrajectoryCompleted(
            event_id=uid, session_id=sid, agent_name="a", group_id="g", objective="add", model="tiny",
            steps=[m.TrajectoryStep(seq=1, step=sample_step())], final_answer="4", status=m.SessionStatus.succeeded,
            closed_by=m.ClosedBy.completed, started_at=T0, completed_at=T0,
            metadata=m.TrajectoryMetadata(step_count=1, total_tokens=42, total_cost=0.001, tools_used=["calculator"],
                                          error_count=0, execution_time_ms=12, efficiency=1.0)),
        m.TrajectoryJudged(event_id=uid, session_id=sid, agent_name="a", judge_name="heuristic", judge_version="1",
                           task_completion=1, solution_quality=0.5, efficiency=0.25, tool_usage=1,
                           reasoning_coherence=0.75, error_recovery=1, overall=0.725, step_rewards=[0.5],
                           judged_at=T0),
        m.RewardAssigned(event_id=uid, session_id=sid, agent_name="a", group_id="g", reward_version="r@1", total=0.8,
                         success=1, efficiency=0.5, quality=0.75, novelty=0.1, reasoning="best", confidence=0.9,
                         advantage=1.2, group_size=4, assigned_at=T0),
        m.DeadLetter(event_id=uid, source_topic="t", source_partition=2, source_offset=7, raw=b"\x00\xff",
                     reason="bad magic byte", occurred_at=T0),
    ]


@pytest.fixture
def codec() -> Codec:
    return Codec(LocalRegistry())


def test_every_avsc_parses() -> None:
    files = sorted(p.name for p in AVRO_DIR.glob("*.avsc"))
    assert files == sorted(SCHEMA_FILES.values())
    for name in SCHEMA_FILES:
        assert parsed_schema(name)["name"] == name
        fastavro.parse_schema(json.loads(schema_text(name)))  # self-contained once inlined


def _record_fields(schema: dict, out: dict[str, list[str]]) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            out[schema["name"] if "." in schema["name"] else f"art.{schema['name']}"] = [
                f["name"] for f in schema["fields"]]
        for value in schema.values():
            _record_fields(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _record_fields(value, out)


def test_field_parity_between_schemas_and_models() -> None:
    fields: dict[str, list[str]] = {}
    for doc in raw_schemas().values():
        _record_fields(doc, fields)
    models = {cls.avro_name: cls for cls in vars(m).values()
              if isinstance(cls, type) and issubclass(cls, m.AvroModel) and cls is not m.AvroModel}
    assert set(models) == set(fields)
    for name, cls in models.items():
        assert list(cls.model_fields) == fields[name], name


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_round_trip_is_byte_exact(codec: Codec, record: m.AvroModel) -> None:
    raw = codec.encode("topic", record)
    assert raw[0] == 0
    assert struct.unpack(">I", raw[1:5])[0] == schema_id_for(schema_text(record.avro_name))
    back = codec.decode(raw)
    assert back == record
    assert codec.encode("topic", back) == raw


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_generated_model_writer_matches_fastavro_byte_for_byte(record: m.AvroModel) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(record.avro_name), to_avro(record))
    out = bytearray()
    model_writer(record.avro_name)(out, record)
    assert bytes(out) == buf.getvalue()


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_compiled_writer_matches_fastavro_byte_for_byte(record: m.AvroModel) -> None:
    data = to_avro(record)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, parsed_schema(record.avro_name), data)
    buf = bytearray()
    compiled_writer(record.avro_name)(buf, data)
    assert bytes(buf) == reference.getvalue()


def test_compiled_writer_handles_evolved_schemas_and_refuses_untagged_unions() -> None:
    from schemas.avro_writer import compile_writer

    doc = _evolved(add=True)
    data = {**to_avro(samples()[7]), "judge_note": "x"}
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, fastavro.parse_schema(doc), data)
    buf = bytearray()
    compile_writer(doc)(buf, data)
    assert bytes(buf) == reference.getvalue()
    event = to_avro(samples()[1])
    del event["payload"]["-type"]
    with pytest.raises(TypeError, match="records need a '-type' key"):
        compiled_writer("art.SessionEvent")(bytearray(), event)


def test_decode_expect_rejects_other_record(codec: Codec) -> None:
    raw = codec.encode("t", samples()[-1])
    with pytest.raises(InvalidRecord, match=r"record art\.DeadLetter where art\.SessionEvent was expected"):
        codec.decode(raw, expect=m.SessionEvent)


def test_registry_ids_stable_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    first = LocalRegistry(path).register("t-value", schema_text("art.SessionEvent"))
    reopened = LocalRegistry(path)
    assert reopened.schema_by_id(first) == schema_text("art.SessionEvent")
    assert reopened.register("t-value", schema_text("art.SessionEvent")) == first
    assert reopened.subjects() == {"t-value": [first]}


def _evolved(add: bool) -> dict:
    doc = copy.deepcopy(raw_schemas()["art.RewardAssigned"])
    if add:
        doc["fields"].append({"name": "judge_note", "type": ["null", "string"], "default": None})
    return doc


def test_schema_evolution_both_directions(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "r.json")
    codec = Codec(registry)
    record = samples()[7]
    data = {k: v for k, v in m.RewardAssigned.model_dump(record).items()}
    data["event_id"] = str(data["event_id"])
    # a newer writer (extra optional field) is read by today's reader
    newer = _evolved(add=True)
    new_id = registry.register("t-value", json.dumps(newer))
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, new_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(newer), {**data, "judge_note": "x"})
    assert codec.decode(buf.getvalue()) == record
    # today's writer is read by a newer reader that expects the new field: it takes the default
    raw = codec.encode("t", record)
    back = fastavro.schemaless_reader(io.BytesIO(raw[5:]), parsed_schema("art.RewardAssigned"),
                                      fastavro.parse_schema(_evolved(add=True)))
    assert back["judge_note"] is None and back["total"] == record.total


def _without_traces() -> dict:
    """Today's SessionEvent schema as it was before StepRecorded.completions existed."""
    doc = copy.deepcopy(raw_schemas()["art.SessionEvent"])
    step = next(b for b in doc["fields"][-1]["type"] if b["name"] == "StepRecorded")
    step["fields"] = [f for f in step["fields"] if f["name"] != "completions"]
    return doc


def test_step_traces_evolve_both_ways(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "r.json")
    codec = Codec(registry)
    record = samples()[1]
    assert record.payload.completions[0].logprobs == [-0.25, -1.5, pytest.approx(-0.1, abs=1e-7)]  # float32
    old = _without_traces()
    old_id = registry.register("t-value", json.dumps(old))
    # an older writer (no traces) is read by today's reader: the steps come with no traces
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, old_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), to_avro(record))
    assert codec.decode(buf.getvalue()) == record.model_copy(
        update={"payload": record.payload.model_copy(update={"completions": []})})
    # today's writer is read by an older reader: it skips the traces and reads the rest
    raw = codec.encode("t", record)
    back = fastavro.schemaless_reader(io.BytesIO(raw[5:]), parsed_schema("art.SessionEvent"),
                                      fastavro.parse_schema(old))
    assert "completions" not in back["payload"] and back["payload"]["tool_result"] == "4"


def test_trace_logprobs_must_align_with_token_ids() -> None:
    with pytest.raises(ValueError, match="2 logprobs for 3 token ids"):
        m.CompletionTrace(token_ids=[1, 2, 3], logprobs=[-1.0, -2.0])
    assert m.CompletionTrace(token_ids=[1, 2], logprobs=[]).logprobs == []


def test_steps_table_column_is_the_type_clickhouse_reads_the_traces_as() -> None:
    from schemas.container import clickhouse_type
    from store.clickhouse import ddl_statements

    event = raw_schemas()["art.SessionEvent"]
    step = next(b for b in event["fields"][-1]["type"] if b["name"] == "StepRecorded")
    avro = next(f["type"] for f in step["fields"] if f["name"] == "completions")
    expected = clickhouse_type(avro, {}, "art")
    ddl = [s for s in ddl_statements() if " steps" in s.split("\n", 1)[0] or s.startswith("ALTER TABLE steps")]
    assert len(ddl) == 2 and all(f"completions {expected}" in s for s in ddl), expected


def test_corrupt_messages_raise_typed_errors(codec: Codec) -> None:
    raw = codec.encode("t", samples()[1])
    with pytest.raises(BadMagicByte, match="bad magic byte: expected 0, found 7"):
        codec.decode(b"\x07" + raw[1:])
    with pytest.raises(UnknownSchemaId, match="unknown schema id 99999"):
        codec.decode(struct.pack(">bI", 0, 99999) + raw[5:])
    with pytest.raises(TruncatedMessage, match="truncated message"):
        codec.decode(raw[: len(raw) // 2])
    with pytest.raises(TruncatedMessage, match="the header alone needs 5"):
        codec.decode(b"\x00\x01")
    with pytest.raises(TruncatedMessage):
        codec.decode(None)


def test_model_by_name_covers_every_top_level_schema() -> None:
    assert set(MODEL_BY_NAME) == set(SCHEMA_FILES)
    assert all(issubclass(v, BaseModel) for v in MODEL_BY_NAME.values())


def test_naive_timestamps_are_taken_as_utc() -> None:
    step = sample_step().model_copy(update={})
    naive = m.StepRecorded.model_validate({**step.model_dump(), "timestamp": T0.replace(tzinfo=None)})
    assert naive.timestamp == T0
