"""Avro object containers from Confluent-framed records, so ClickHouse decodes them in bulk.

A Confluent record is ``0x00 | schema id (4 bytes) | Avro body``. An Avro object container file
(OCF) is a header carrying the writer schema, then blocks of concatenated bodies. Re-framing is
byte concatenation: no record is decoded in Python, and ClickHouse's C++ Avro reader (``FORMAT
Avro``) does the decoding column by column. That is what makes bulk re-scoring fast (see
``consumers/replay_sql.py``).

Because an Avro record is the plain concatenation of its fields, the container's schema may be a
*wrapper*: extra leading fields (``src_epoch``, ``src_partition``, ``src_offset``) whose encoded
values we prepend to each body. Each row then carries its log coordinates into ClickHouse without a second pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from schemas.avro_writer import write_long

MAGIC = b"Obj\x01"
SOURCE_FIELDS: list[dict[str, Any]] = [
    {"name": "src_epoch", "type": "long"},
    {"name": "src_partition", "type": "int"},
    {"name": "src_offset", "type": "long"},
]
SOURCE_COLUMNS = "src_epoch Int64, src_partition Int32, src_offset Int64"


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of an int/long."""
    out = bytearray()
    write_long(out, n)
    return bytes(out)


def object_container(schema: str, bodies: Sequence[bytes], sync: bytes | None = None) -> bytes:
    """One uncompressed OCF holding ``bodies`` (already Avro-encoded with ``schema``) in one block."""
    sync = sync or os.urandom(16)
    meta = {b"avro.schema": schema.encode(), b"avro.codec": b"null"}
    header = MAGIC + zigzag(len(meta)) + b"".join(zigzag(len(k)) + k + zigzag(len(v)) + v for k, v in meta.items())
    data = b"".join(bodies)
    return header + zigzag(0) + sync + zigzag(len(bodies)) + zigzag(len(data)) + data + sync


def with_fields(schema: str, fields: list[dict[str, Any]]) -> str:
    """The record schema with ``fields`` before its own (their encoded values prefix each body)."""
    doc = json.loads(schema)
    doc["fields"] = fields + doc["fields"]
    return json.dumps(doc)


def with_source_fields(schema: str) -> str:
    """The record schema with the log coordinates (``SOURCE_FIELDS``) as its first fields."""
    return with_fields(schema, SOURCE_FIELDS)


def clickhouse_type(avro: Any, named: dict[str, Any] | None = None, namespace: str = "", *,
                    in_variant: bool = False) -> str:
    """The ClickHouse column type that ``FORMAT Avro`` reads an Avro type into (records -> named
    Tuples, unions of several branches -> Variant, enums -> String, timestamp-micros -> DateTime64).

    Inside a Variant, ClickHouse matches branch types exactly as it infers them, so timestamps there
    carry no time zone and enums are Enum8 (elsewhere values are cast: UTC timestamps, String enums)."""
    named = {} if named is None else named

    def inner(t: Any, ns: str = namespace, variant: bool = in_variant) -> str:
        return clickhouse_type(t, named, ns, in_variant=variant)

    if isinstance(avro, str):
        if avro in named:
            return inner(named[avro])
        qualified = f"{namespace}.{avro}"
        if qualified in named:
            return inner(named[qualified])
        return _PRIMITIVES[avro]
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) == 1:
            one = inner(branches[0])
            nullable = "null" in avro and not one.startswith(("Tuple", "Array", "Map", "Variant"))
            return f"Nullable({one})" if nullable else one
        # ClickHouse names a Variant with its members sorted: so do we, and names compare equal
        return "Variant(" + ", ".join(sorted(inner(b, variant=True) for b in branches)) + ")"
    kind = avro["type"]
    if kind in ("record", "enum", "fixed"):
        ns = avro.get("namespace", namespace)
        full = avro["name"] if "." in avro["name"] else f"{ns}.{avro['name']}"
        named[full] = avro
        if kind == "enum":
            if not in_variant:
                return "String"
            values = ", ".join(f"'{sym}' = {i}" for i, sym in enumerate(avro["symbols"]))
            return f"Enum{8 if len(avro['symbols']) < 128 else 16}({values})"
        if kind == "fixed":
            return f"FixedString({avro['size']})"
        fields = ", ".join(f"{f['name']} {inner(f['type'], ns)}" for f in avro["fields"])
        return f"Tuple({fields})"
    if kind == "array":
        return f"Array({inner(avro['items'])})"
    if kind == "map":
        return f"Map(String, {inner(avro['values'])})"
    if avro.get("logicalType") in ("timestamp-micros", "timestamp-millis"):
        precision = 6 if avro["logicalType"] == "timestamp-micros" else 3
        return f"DateTime64({precision})" if in_variant else f"DateTime64({precision}, 'UTC')"
    return inner(kind)


def field_types(schema: str, names: Sequence[str]) -> dict[str, str]:
    """ClickHouse types of the named top-level fields of a record schema (resolving named types)."""
    doc = json.loads(schema)
    named: dict[str, Any] = {}
    ns = doc.get("namespace", "")
    types = {f["name"]: clickhouse_type(f["type"], named, ns) for f in doc["fields"]}
    missing = [n for n in names if n not in types]
    if missing:
        raise KeyError(f"{doc['name']} has no field(s) {missing}")
    return {n: types[n] for n in names}


_PRIMITIVES = {"string": "String", "bytes": "String", "long": "Int64", "int": "Int32", "double": "Float64",
               "float": "Float32", "boolean": "Bool", "null": "Nullable(Nothing)"}
