"""Session events decoded by ClickHouse: a landing table and two materialized views.

The sink's hot path sends each batch of session events as one Avro object container (see
``schemas.container``) into ``ingest_session_events_<schema id>``, a Null-engine table; two
materialized views write ``session_events`` and ``steps`` from it. Decoding, the event rules of
``schemas.rules`` (its ``VALID_SQL``), in-batch duplicates and keys already stored are all handled there, column by
column, instead of per event in Python:

- rule violations (empty session id, negative seq, a start that is not seq 0, seq 0 that is not a
  start) are not stored, like the Python path (the stream dead-letters them);
- ``kind`` columns come from the union branch (the models fix each branch's ``kind`` literal);
- within a batch the first record of a (session_id, seq) by log position wins;
- a key already in the target table is not inserted again (``NOT IN`` over the batch's sessions),
  so a redelivered batch after a crash between insert and commit adds nothing.

The tables are named after the writer schema id they read: a new schema gets new ones, and records
written with another schema are re-encoded to the current one by the sink before landing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from schemas.container import clickhouse_type, field_types, object_container
from schemas.rules import VALID_SQL
from store.clickhouse import literal

# Log coordinates (and the raw record, stored as ``session_events.payload``) put before each body.
INGEST_FIELDS: list[dict[str, Any]] = [
    {"name": "src_epoch", "type": "long"},
    {"name": "src_topic", "type": "string"},
    {"name": "src_partition", "type": "int"},
    {"name": "src_offset", "type": "long"},
    {"name": "src_raw", "type": "bytes"},
]
INGEST_COLUMNS = "src_epoch Int64, src_topic String, src_partition Int32, src_offset Int64, src_raw String"
EVENT_FIELDS = ("event_id", "session_id", "seq", "ts", "agent_name", "payload")
log = logging.getLogger(__name__)


def landing_table(schema_id: int) -> str:
    return f"ingest_session_events_{schema_id}"


def _kind(expr: str, branches: dict[str, str]) -> str:
    """The kind of the union branch ``expr`` holds, from its discriminator: no per-branch extraction.

    ``branches`` maps each branch's ClickHouse type to its kind; ClickHouse numbers a Variant's
    members in the order of their sorted type names, and ``variantType`` is an Enum of that number.
    """
    kinds = [branches[name] for name in sorted(branches)]
    return f"arrayElement([{', '.join(literal(k) for k in kinds)}], toInt8(variantType({expr})) + 1)"


def _records(union: list[dict[str, Any]], named: dict[str, Any], namespace: str) -> dict[str, tuple[str, str]]:
    """Avro record name -> (ClickHouse type inside a Variant, default ``kind``) for a union of records."""
    out = {}
    for branch in union:
        kind = next(f["default"] for f in branch["fields"] if f["name"] == "kind")
        out[branch["name"]] = (clickhouse_type(branch, named, namespace, in_variant=True), kind)
    return out


def ingest_statements(schema: str, schema_id: int) -> list[str]:
    """DDL of the landing table and its two views for SessionEvent schema ``schema``."""
    table = landing_table(schema_id)
    doc = json.loads(schema)
    ns = doc.get("namespace", "")
    types = field_types(schema, EVENT_FIELDS)
    union = next(f["type"] for f in doc["fields"] if f["name"] == "payload")
    named: dict[str, Any] = {}
    payloads = _records(union, named, ns)
    step = next(b for b in union if b["name"] == "StepRecorded")
    actions = _records(next(f["type"] for f in step["fields"] if f["name"] == "action"), named, ns)
    columns = ", ".join(f"`{name}` {kind}" for name, kind in types.items())
    events = f"(SELECT *, {_kind('payload', dict(payloads.values()))} AS kind FROM {table} WHERE {VALID_SQL})"
    first = "LIMIT 1 BY session_id, seq"  # bodies arrive in log order; a session lives in one partition

    def fresh(target: str) -> str:
        return (f"(session_id, seq) NOT IN (SELECT session_id, seq FROM {target} "
                f"WHERE session_id IN (SELECT session_id FROM {table}))")

    a = "s.action"
    ut, an, ask, think = (literal(actions[name][0]) for name in ("UseTool", "Answer", "Ask", "Think"))
    action_kind = _kind(a, dict(actions.values()))
    text = (f"multiIf(action_kind = 'use_tool', variantElement({a}, {ut}).input, action_kind = 'answer', "
            f"variantElement({a}, {an}).text, action_kind = 'ask', variantElement({a}, {ask}).question, "
            f"variantElement({a}, {think}).note)")
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({INGEST_COLUMNS}, {columns}) ENGINE = Null "
        "SETTINGS allow_suspicious_variant_types = 1",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_to_session_events TO session_events AS
SELECT session_id, seq, toUUID(event_id) AS event_id, kind, agent_name, ts, src_raw AS payload,
       toUInt64(src_epoch) AS log_epoch, src_topic AS topic, toUInt32(src_partition) AS partition,
       toUInt64(src_offset) AS offset
FROM {events} WHERE {fresh('session_events')} {first}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_to_steps TO steps AS
SELECT session_id, seq, s.step_number AS step_number, agent_name, s.observation AS observation,
       s.thought AS thought, {action_kind} AS action_kind,
       if(action_kind = 'use_tool', variantElement({a}, {ut}).tool, '') AS tool, {text} AS action_text,
       s.action_input AS action_input, s.tool_result AS tool_result, s.error AS error, s.reflection AS reflection,
       s.step_reward AS step_reward, s.step_metadata AS step_metadata, s.timestamp AS timestamp,
       s.execution_time_ms AS execution_time_ms, s.tokens AS tokens, s.cost AS cost,
       s.completions AS completions, toUUID(event_id) AS event_id,
       ts AS emitted_at, toUInt64(src_epoch) AS log_epoch, src_topic AS topic, toUInt32(src_partition) AS partition,
       toUInt64(src_offset) AS offset
FROM (SELECT *, variantElement(payload, {literal(payloads['StepRecorded'][0])}) AS s FROM {events}
      WHERE kind = 'step_recorded')
WHERE {fresh('steps')} {first}""",
    ]


def ensure_ingest(client: Any, schema: str, schema_id: int) -> str:
    """Create the landing table and views for this schema if missing; returns the table name."""
    for statement in ingest_statements(schema, schema_id):
        client.command(statement)
    return landing_table(schema_id)


def insert_container(client: Any, table: str, schema: str, bodies: Sequence[bytes], raws: Sequence[bytes],
                     decodes: Callable[[bytes], bool]) -> int:
    """Insert ``bodies`` as one Avro container into ``table``; returns how many were left out.

    If ClickHouse refuses the container, the records are checked one by one with ``decodes`` (the
    Python codec); the ones that fail are left out and the rest inserted again. When every record
    decodes, ClickHouse itself failed: the error is raised, so the caller retries the whole batch.
    """
    if not bodies:
        return 0
    try:
        client.raw_insert(table, None, object_container(schema, bodies), fmt="Avro")
        return 0
    except Exception as exc:
        good = [i for i, raw in enumerate(raws) if decodes(raw)]
        if len(good) == len(bodies):
            raise
        log.warning("%d of %d records do not decode (%s); inserting the rest", len(bodies) - len(good),
                    len(bodies), exc)
        if good:
            client.raw_insert(table, None, object_container(schema, [bodies[i] for i in good]), fmt="Avro")
        return len(bodies) - len(good)
