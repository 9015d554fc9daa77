"""Record -> row mappings (consumers/rows.py) tied to the tables they fill and to the ClickHouse path.

The step and session-event rows are written twice: by ``rows.py`` (the sink's Python path) and by the
materialized views of ``store.ingest`` (ClickHouse decodes the Avro itself). Both must fill the
columns ``store/ddl`` declares, and the same event must become the same row either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from consumers.rows import SESSION_EVENTS, STEPS, TABLES_BY_RECORD, TableSpec, rows_for, step_row
from consumers.sink import ClickHouseSink
from schemas.codec import Codec
from schemas.models import (
    Answer,
    CompletionTrace,
    SessionEvent,
    SessionStarted,
    StepRecorded,
    Think,
    UseTool,
)
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from store.clickhouse import connect, ensure_schema
from store.ingest import ensure_ingest

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Record:
    """What the sink reads of a consumed message."""

    offset: int
    value: bytes
    key: bytes  # the session id (the sink refuses a record keyed otherwise)


def stored_columns(client: Any, table: str) -> list[str]:
    """The columns a writer fills: every column without a DEFAULT/MATERIALIZED expression, in order."""
    return [row[0] for row in client.query(f"DESCRIBE TABLE {table}").result_rows if not row[2]]


def test_every_table_spec_names_the_ddl_columns_in_order(store: Any) -> None:
    specs = {spec.name: spec for specs in TABLES_BY_RECORD.values() for spec in specs}
    assert set(specs) == {"session_events", "steps", "trajectories", "judgments", "rewards", "dead_letters"}
    for name, spec in specs.items():
        assert list(spec.columns) == stored_columns(store, name), name


def test_the_ingest_views_fill_the_same_columns(store: Any) -> None:
    codec = Codec(LocalRegistry())
    schema_id = codec.schema_id("art.session-events", "art.SessionEvent")
    table = ensure_ingest(store, codec.registry.schema_by_id(schema_id), schema_id)
    for spec in (SESSION_EVENTS, STEPS):
        view = f"{table}_to_{spec.name}"
        assert [row[0] for row in store.query(f"DESCRIBE TABLE {view}").result_rows] == list(spec.columns), view
    internal = {r[0] for r in store.query(f"SHOW TABLES FROM {table.split('.')[0]}").result_rows}
    assert {f"{table.split('.')[1]}{s}" for s in ("", "_checked", "_to_checked", "_to_steps")} <= internal
    assert not [name for (name,) in store.query("SHOW TABLES").result_rows if name.startswith("ingest_")]


def events(sid: str) -> list[SessionEvent]:
    trace = CompletionTrace(purpose="decide", model="m", token_ids=[1, 2, 3], logprobs=[-0.5, -0.25, -1.0])
    steps = [
        StepRecorded(step_number=0, observation="o0", thought="use calc", action=UseTool(tool="calc", input="6*7"),
                     action_input="6*7", tool_result="42", step_metadata={"k": "v"}, timestamp=T0,
                     execution_time_ms=12, tokens=30, cost=0.25, completions=[trace]),
        StepRecorded(step_number=1, observation="o1", thought="", action=Think(note="hmm"), error="boom",
                     reflection="r", step_reward=0.5, timestamp=T0, execution_time_ms=3),
        StepRecorded(step_number=2, observation="o2", thought="done", action=Answer(text="42"), timestamp=T0),
    ]
    started = SessionStarted(objective="o", model="m", group_id="g")
    return [SessionEvent(session_id=sid, seq=i, ts=T0, agent_name="a", payload=p)
            for i, p in enumerate([started, *steps])]


def test_a_step_row_by_hand() -> None:
    codec = Codec(LocalRegistry())
    raw = codec.encode("art.session-events", events("s")[1])
    name, data = codec.decode_dict(raw)
    row = rows_for(STEPS, data, raw, (3, "art.session-events", 2, 17))
    assert name == "art.SessionEvent" and row is not None
    assert dict(zip(STEPS.columns, row, strict=True)) == {
        "session_id": "s", "seq": 1, "step_number": 0, "agent_name": "a", "observation": "o0", "thought": "use calc",
        "action_kind": "use_tool", "tool": "calc", "action_text": "6*7", "action_input": "6*7", "tool_result": "42",
        "error": None, "reflection": None, "step_reward": None, "step_metadata": {"k": "v"}, "timestamp": T0,
        "execution_time_ms": 12, "tokens": 30, "cost": 0.25,
        "completions": [("decide", "m", [1, 2, 3], [-0.5, -0.25, -1.0])], "event_id": data["event_id"],
        "emitted_at": T0, "log_epoch": 3, "topic": "art.session-events", "partition": 2, "offset": 17}
    assert STEPS.key_of(row) == ("s", 1)
    assert rows_for(STEPS, codec.decode_dict(codec.encode("art.session-events", events("s")[0]))[1], raw,
                    (0, "t", 0, 0)) is None  # the start is no step
    assert step_row("s", 1, "a", data["payload"]) == row[:len(STEPS.columns) - 6]


async def test_python_and_clickhouse_store_the_same_rows(clickhouse_dsn: str, database: str, tmp_path: Any) -> None:
    """One batch through the sink's two paths into two databases: identical rows in both."""
    topics = Topics(prefix="rows.", session_partitions=1)
    codec = Codec(LocalRegistry(tmp_path / "registry.json"))
    batch = {TopicPartition(topics.session_events.name, 0): [
        Record(i, codec.encode(topics.session_events.name, e), e.session_id.encode())
        for i, e in enumerate(events("s-rows"))]}
    python_db = f"{database}_py"
    ensure_schema(connect(clickhouse_dsn, python_db))
    for db, in_clickhouse in ((database, True), (python_db, False)):
        sink = ClickHouseSink("127.0.0.1:9", topics, codec, connect(clickhouse_dsn, db), group_id="rows",
                              log_epoch=5, decode_in_clickhouse=in_clickhouse)
        sink.write(batch)
    store = connect(clickhouse_dsn, database)
    for spec in (SESSION_EVENTS, STEPS):
        selected = ", ".join(f"`{c}`" for c in spec.columns)
        query = "SELECT {cols} FROM {db}.{table} ORDER BY seq"
        by_clickhouse = store.query(query.format(cols=selected, db=database, table=spec.name)).result_rows
        by_python = store.query(query.format(cols=selected, db=python_db, table=spec.name)).result_rows
        assert by_clickhouse == by_python and len(by_python) == (4 if spec is SESSION_EVENTS else 3), spec.name


def test_key_of_is_a_tuple_for_one_and_many_columns() -> None:
    one = TableSpec("t", ("a", "b"), ("b",), lambda d, r, s: [])
    many = TableSpec("t", ("a", "b", "c"), ("c", "a"), lambda d, r, s: [])
    assert one.key_of(["x", "y"]) == ("y",) and many.key_of(["x", "y", "z"]) == ("z", "x")
