"""Session events decoded by ClickHouse: a landing table and two materialized views.

The sink's hot path sends each batch of session events as one Avro object container (see
``schemas.container``) into ``ingest_session_events_<schema id>``, a Null-engine table; two
materialized views write ``session_events`` and ``steps`` from it. These internal tables live in their
own database (``<database>_ingest``), out of the analysts' ``SHOW TABLES``. Decoding, the event rules, in-batch
duplicates and keys already stored are all handled there, column by column:

- what the stream refuses is not stored (it dead-letters it): the verdict of ``schemas.rules.admit``
  is generated here as SQL — the seq rules (``schemas.rules.valid_sql``), the record key equal to
  the session id, the models'
  bounds (read from the pydantic field metadata: counts, finite amounts, times in range), valid UTF-8
  in every string, each union branch's ``kind`` literal, and no bytes after the body (each body is
  followed by a per-container random marker, which a body with trailing bytes misreads);
- ``kind`` columns come from the union branch (the models fix each branch's ``kind`` literal);
- within a batch the first record of a (session_id, seq) by log position wins;
- a key already in the target table is not inserted again (``NOT IN`` over the batch's sessions),
  so a redelivered batch after a crash between insert and commit adds nothing;
- events after the session's completion are left out (the stream dead-letters those).

The tables are named after the writer schema id they read: a new schema gets new ones, and records
written with another schema are re-encoded to the current one by the sink before landing.
"""

from __future__ import annotations

import json
import logging
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

import annotated_types
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError
from pydantic import AfterValidator, BaseModel

from schemas.container import clickhouse_type, field_types, object_container, zigzag
from schemas.limits import TIME_MAX_MICROS, TIME_MIN_MICROS
from schemas.models import MODEL_BY_AVRO_NAME, Timestamp
from schemas.rules import valid_sql
from store.clickhouse import literal

# Log coordinates, the record key and raw record (``session_events.payload``), and a marker before
# each body; the same marker follows the body (``TRAILER_FIELDS``).
CHECK_TYPE: dict[str, Any] = {"type": "fixed", "name": "IngestCheck", "size": 8}
INGEST_FIELDS: list[dict[str, Any]] = [
    {"name": "src_epoch", "type": "long"},
    {"name": "src_topic", "type": "string"},
    {"name": "src_partition", "type": "int"},
    {"name": "src_offset", "type": "long"},
    {"name": "src_key", "type": "bytes"},
    {"name": "src_raw", "type": "bytes"},
    {"name": "src_check", "type": CHECK_TYPE},
]
TRAILER_FIELDS: list[dict[str, Any]] = [{"name": "src_end", "type": "IngestCheck"}]
SENTINEL = "boolean"  # the never-written branch of optional fields (see ``_strict_nullables``)
INGEST_COLUMNS = ("src_epoch Int64, src_topic String, src_partition Int32, src_offset Int64, src_key String, "
                  "src_raw String, src_check FixedString(8)")
EVENT_FIELDS = ("event_id", "session_id", "seq", "ts", "agent_name", "payload")
# ClickHouse errors that say "try again" or "not you", not "this data is wrong": memory, timeouts,
# overload, and refusing the client (read-only, access, authentication, missing table or database)
TRANSIENT_CODES = {60, 81, 159, 164, 202, 209, 210, 241, 252, 394, 425, 497, 516}
log = logging.getLogger(__name__)


def frame(prefix: bytes, offset: int, key: bytes, raw: bytes, body: bytes, check: bytes) -> bytes:
    """One landing record: ``prefix`` (``frame_prefix``: epoch, topic, partition), then offset, key,
    raw record and the marker, the event's Avro body, the marker again (``INGEST_FIELDS``)."""
    return prefix + zigzag(offset) + zigzag(len(key)) + key + zigzag(len(raw)) + raw + check + body + check


def frame_prefix(log_epoch: int, topic: str, partition: int) -> bytes:
    name = topic.encode()
    return zigzag(log_epoch) + zigzag(len(name)) + name + zigzag(partition)


def internal_database(database: str) -> str:
    """The sink's landing tables and their views, beside ``database`` and out of its ``SHOW TABLES``."""
    return f"{database}_ingest"


def landing_table(database: str, schema_id: int) -> str:
    """``<database>_ingest.ingest_session_events_<schema id>`` (names are checked identifiers)."""
    return f"{internal_database(database)}.ingest_session_events_{schema_id}"


def _strict_nullables(avro: Any) -> Any:
    """``avro`` with a never-written third branch (``SENTINEL``) in every ``["null", X]`` union.

    ClickHouse reads an optional field as NULL whatever its union index (16, -1, ...) where fastavro
    refuses an index out of range. With three branches ClickHouse reads the union as a Variant, which
    refuses an index out of range too, and the sentinel branch (index 2, also refused by fastavro) is
    refused by ``validity``. The bytes of every valid record mean the same under both schemas."""
    if isinstance(avro, list):
        branches = [_strict_nullables(b) for b in avro]
        if len(branches) == 2 and "null" in branches:
            return [*branches, SENTINEL]
        return branches
    if isinstance(avro, dict):
        out = dict(avro)
        if avro.get("type") == "record":
            out["fields"] = [{**f, "type": _strict_nullables(f["type"])} for f in avro["fields"]]
        elif avro.get("type") == "array":
            out["items"] = _strict_nullables(avro["items"])
        elif avro.get("type") == "map":
            out["values"] = _strict_nullables(avro["values"])
        return out
    return avro


def container_schema(schema: str) -> str:
    """The landing container's record: ingest fields, the event's own fields (strict optionals), the trailer."""
    doc = _strict_nullables(json.loads(schema))
    doc["fields"] = INGEST_FIELDS + doc["fields"] + TRAILER_FIELDS
    return json.dumps(doc)


def _event_schema(schema: str) -> str:
    """The event's schema as the landing table reads it (strict optionals, no ingest fields)."""
    return json.dumps(_strict_nullables(json.loads(schema)))


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


def _optional(avro: Any) -> Any | None:
    """X of a strict ``["null", X, SENTINEL]`` union, else None."""
    if isinstance(avro, list) and len(avro) == 3 and avro[0] == "null" and avro[2] == SENTINEL:
        return avro[1]
    return None


def optional_value(expr: str, avro: Any) -> str:
    """The Nullable value of a strict optional column or tuple element."""
    return f"variantElement({expr}, {literal(clickhouse_type(_optional(avro), in_variant=True))})"


# --- the verdict as SQL -------------------------------------------------------------------------


def _bounds(annotation: Any, metadata: list[Any], expr: str) -> list[str]:
    """SQL for the constraints pydantic enforces on one field (Ge/Le, finite, time range)."""
    out: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            out.append(f"{expr} >= {item.ge!r}")
        elif isinstance(item, annotated_types.Le):
            out.append(f"{expr} <= {item.le!r}")
        elif getattr(item, "allow_inf_nan", True) is False:
            out.append(f"isFinite({expr})")
        elif isinstance(item, AfterValidator) and item in typing.get_args(Timestamp)[1:]:
            out.append(f"toUnixTimestamp64Micro({expr}) BETWEEN {TIME_MIN_MICROS} AND {TIME_MAX_MICROS - 1}")
    for arg in typing.get_args(annotation):  # Optional[Annotated[...]]: the bounds sit on the inner type
        if typing.get_origin(arg) is typing.Annotated:
            inner = [m for info in typing.get_args(arg)[1:] for m in getattr(info, "metadata", [info])]
            out += [f"({expr} IS NULL OR {c})" for c in _bounds(None, inner, f"assumeNotNull({expr})")]
    return out


def _fields(fields: list[dict[str, Any]], expr: Callable[[str], str], model: type[BaseModel] | None,
            named: dict[str, Any], ns: str) -> list[str]:
    """Checks of a record's fields: their contents, and the bounds the record's model puts on them."""
    out: list[str] = []
    for f in fields:
        if f["name"] == "kind":
            continue  # checked against the union branch by the caller
        value, inner = expr(f["name"]), _optional(f["type"])
        if inner is None:
            out += _checks(f["type"], value, named, ns)
        else:
            out.append(f"variantType({value}) != {literal(clickhouse_type(SENTINEL, in_variant=True))}")
            value = optional_value(value, f["type"])
            out += [f"({value} IS NULL OR {c})" for c in _checks(inner, f"assumeNotNull({value})", named, ns)]
        if model is not None and f["name"] in model.model_fields:
            info = model.model_fields[f["name"]]
            out += _bounds(info.annotation, info.metadata, value)
    return out


def _checks(avro: Any, expr: str, named: dict[str, Any], ns: str) -> list[str]:
    """Valid UTF-8 in every string, bounds of every record's fields, the ``kind`` of every union branch."""
    if isinstance(avro, str):
        qualified = avro if avro in named else f"{ns}.{avro}"
        if qualified in named:
            return _checks(named[qualified], expr, named, ns)
        return [f"isValidUTF8({expr})"] if avro == "string" else []
    if isinstance(avro, list):
        records = _records(avro, named, ns)
        kind = _kind(expr, dict(records.values()))
        out = [f"{kind} IN ({', '.join(literal(k) for _, k in records.values())})"]  # not an empty Variant
        for branch in avro:
            ch_type, literal_kind = records[branch["name"]]
            element = f"variantElement({expr}, {literal(ch_type)})"
            inner = [f"tupleElement({element}, 'kind') = {literal(literal_kind)}",
                     *_checks(branch, element, named, ns)]
            out.append(f"({kind} != {literal(literal_kind)} OR ({' AND '.join(inner)}))")
        return out
    kind = avro["type"]
    if kind == "record":
        ns = avro.get("namespace", ns)
        full = avro["name"] if "." in avro["name"] else f"{ns}.{avro['name']}"
        named[full] = avro
        return _fields(avro["fields"], lambda name: f"tupleElement({expr}, '{name}')", MODEL_BY_AVRO_NAME.get(full),
                       named, ns)
    if kind == "map":  # Python keeps one value per key: a map with a key twice is not canonical
        return [f"arrayAll(x -> isValidUTF8(x), mapKeys({expr}))",
                f"length(mapKeys({expr})) = length(arrayDistinct(mapKeys({expr})))",
                *(f"arrayAll(x -> {c}, mapValues({expr}))" for c in _checks(avro["values"], "x", named, ns))]
    if kind == "array":
        return [f"arrayAll(x -> {c}, {expr})" for c in _checks(avro["items"], "x", named, ns)]
    if kind in ("enum", "fixed") or avro.get("logicalType") == "uuid":
        return []
    return _checks(kind, expr, named, ns)


def validity(schema: str, kind: str) -> str:
    """The SQL form of ``schemas.rules.admit`` over one landing row (``kind``: the payload's kind);
    ``schema`` is the event schema as landed (``_event_schema``)."""
    doc = json.loads(schema)
    ns = doc.get("namespace", "")
    checks = [
        valid_sql(kind), "src_key = session_id", "src_check = src_end",
        "toString(toUUIDOrNull(event_id)) = event_id",  # canonical form only, as Python re-encodes it
    ]
    model = MODEL_BY_AVRO_NAME[f"{ns}.{doc['name']}"]
    checks += _fields(doc["fields"], lambda name: f"`{name}`", model, {}, ns)
    return " AND ".join(checks)


# --- tables and views -------------------------------------------------------------------------


def ingest_statements(schema: str, schema_id: int, database: str) -> list[str]:
    """DDL of the landing table, the checked stage and the two views for SessionEvent schema ``schema``.

    Landing -> checked (both Null tables): the verdict and the kind are computed once per row there;
    the views into ``session_events`` and ``steps`` read the checked rows."""
    table = landing_table(database, schema_id)
    session_events, steps = f"{database}.session_events", f"{database}.steps"
    checked = f"{table}_checked"
    schema = _event_schema(schema)
    doc = json.loads(schema)
    ns = doc.get("namespace", "")
    types = field_types(schema, EVENT_FIELDS)
    union = next(f["type"] for f in doc["fields"] if f["name"] == "payload")
    named: dict[str, Any] = {}
    payloads = _records(union, named, ns)
    step = next(b for b in union if b["name"] == "StepRecorded")
    actions = _records(next(f["type"] for f in step["fields"] if f["name"] == "action"), named, ns)
    columns = ", ".join(f"`{name}` {kind}" for name, kind in types.items())
    kind = _kind("payload", dict(payloads.values()))
    events = f"(SELECT * FROM {checked} WHERE valid)"
    first = "ORDER BY src_partition, src_offset LIMIT 1 BY session_id, seq"  # the first in the log wins

    def fresh(target: str) -> str:
        return (f"(session_id, seq) NOT IN (SELECT session_id, seq FROM {target} "
                f"WHERE session_id IN (SELECT session_id FROM {checked}))")

    # after the completion: stored before (a join on the stored completions), or in this batch (a window)
    stored_done = (f"(SELECT session_id, min(seq) AS done FROM {session_events} WHERE kind = 'session_completed' "
                   f"AND session_id IN (SELECT session_id FROM {checked}) GROUP BY session_id)")
    after_completion = (f"(session_id, seq) NOT IN (SELECT session_id, seq FROM {events} AS late INNER JOIN "
                        f"{stored_done} AS c USING session_id WHERE late.seq > c.done) "
                        "AND (batch_done = 0 OR seq <= batch_done)")
    events = (f"(SELECT *, minIf(seq, kind = 'session_completed') OVER (PARTITION BY session_id) AS batch_done "
              f"FROM {events})")
    a = "s.action"
    ut, an, ask, think = (literal(actions[name][0]) for name in ("UseTool", "Answer", "Ask", "Think"))
    action_kind = _kind(a, dict(actions.values()))
    text = (f"multiIf(action_kind = 'use_tool', variantElement({a}, {ut}).input, action_kind = 'answer', "
            f"variantElement({a}, {an}).text, action_kind = 'ask', variantElement({a}, {ask}).question, "
            f"variantElement({a}, {think}).note)")
    step_types = {f["name"]: f["type"] for f in step["fields"]}

    def opt(name: str) -> str:
        return optional_value(f"s.{name}", step_types[name])

    null = "ENGINE = Null SETTINGS allow_suspicious_variant_types = 1"
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({INGEST_COLUMNS}, {columns}, src_end FixedString(8)) {null}",
        f"CREATE TABLE IF NOT EXISTS {checked} ({INGEST_COLUMNS}, {columns}, kind String, valid Bool) {null}",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_to_checked TO {checked} AS
SELECT * EXCEPT src_end, {kind} AS kind, ifNull({validity(schema, "kind")}, false) AS valid FROM {table}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_to_session_events TO {session_events} AS
SELECT session_id, seq, toUUID(event_id) AS event_id, kind, agent_name, ts, src_raw AS payload,
       toUInt64(src_epoch) AS log_epoch, src_topic AS topic, toUInt32(src_partition) AS partition,
       toUInt64(src_offset) AS offset
FROM {events} WHERE {fresh(session_events)} AND {after_completion} {first}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_to_steps TO {steps} AS
SELECT session_id, seq, s.step_number AS step_number, agent_name, s.observation AS observation,
       s.thought AS thought, {action_kind} AS action_kind,
       if(action_kind = 'use_tool', variantElement({a}, {ut}).tool, '') AS tool, {text} AS action_text,
       s.action_input AS action_input, {opt('tool_result')} AS tool_result, {opt('error')} AS error,
       {opt('reflection')} AS reflection, {opt('step_reward')} AS step_reward, s.step_metadata AS step_metadata,
       s.timestamp AS timestamp,
       s.execution_time_ms AS execution_time_ms, s.tokens AS tokens, s.cost AS cost,
       s.completions AS completions, toUUID(event_id) AS event_id,
       ts AS emitted_at, toUInt64(src_epoch) AS log_epoch, src_topic AS topic, toUInt32(src_partition) AS partition,
       toUInt64(src_offset) AS offset
FROM (SELECT *, variantElement(payload, {literal(payloads['StepRecorded'][0])}) AS s FROM {events}
      WHERE kind = 'step_recorded')
WHERE {fresh(steps)} AND {after_completion} {first}""",
    ]


def ensure_ingest(client: Client, schema: str, schema_id: int) -> str:
    """Create the landing table and views for this schema if missing; returns the table name."""
    database = client.database or "default"
    client.command(f"CREATE DATABASE IF NOT EXISTS {internal_database(database)}")
    for statement in ingest_statements(schema, schema_id, database):
        client.command(statement)
    return landing_table(database, schema_id)


# --- inserting --------------------------------------------------------------------------------


def is_refusal(exc: BaseException) -> bool:
    """The data cannot go in: ClickHouse answered and refused it, or the client could not encode it
    for its column (vs. unreachable, overloaded, or refusing us)."""
    if isinstance(exc, DataError | ValueError | TypeError | OverflowError):
        return True
    code = re.search(r"Code: (\d+)", str(exc))
    return code is not None and int(code.group(1)) not in TRANSIENT_CODES


def isolate(count: int, insert: Callable[[list[int]], None]) -> dict[int, str]:
    """Insert records ``0..count-1`` with ``insert``; when ClickHouse refuses, halve until the records it
    refuses on their own are found. Returns {index: ClickHouse's reason} of those.

    A failure that is not a refusal of the data (``is_refusal``) is raised: the caller retries the
    whole batch. Refusals are never retried: a record that cannot go in must not hold back the rest."""
    refused: dict[int, str] = {}
    pending = [list(range(count))]
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            insert(part)
        except Exception as exc:
            if not is_refusal(exc):
                raise
            if len(part) == 1:
                refused[part[0]] = f"ClickHouse refused the record: {' '.join(str(exc).split())[:300]}"
                continue
            half = len(part) // 2
            pending += [part[half:], part[:half]]  # the earlier half first: log order within the batch
    for reason in refused.values():
        log.error("%s", reason)
    return refused


def insert_container(client: Client, table: str, schema: str, bodies: Sequence[bytes],
                     check: Callable[[int], str | None]) -> dict[int, str]:
    """Insert ``bodies`` as one Avro container into ``table``; returns {index: reason} of the ones left out.

    If ClickHouse refuses the container, each record is checked with ``check`` (the Python verdict)
    and the refused ones are left out; what ClickHouse still refuses is isolated (``isolate``)."""
    if not bodies:
        return {}

    def insert(indices: list[int]) -> None:
        client.raw_insert(table, None, object_container(schema, [bodies[i] for i in indices]), fmt="Avro")

    try:
        insert(list(range(len(bodies))))
        return {}
    except Exception as exc:
        if not is_refusal(exc):
            raise
        log.warning("ClickHouse refused a container of %d records: %s", len(bodies), str(exc).splitlines()[0][:200])
    left_out = {i: reason for i in range(len(bodies)) if (reason := check(i)) is not None}
    rest = [i for i in range(len(bodies)) if i not in left_out]
    refused = isolate(len(rest), lambda part: insert([rest[i] for i in part]))
    return left_out | {rest[i]: reason for i, reason in refused.items()}
