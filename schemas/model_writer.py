"""Avro writers generated as Python source from a schema, reading pydantic models directly.

The SDK encodes every agent step, so this is the hottest path on the agent side. Going through
``model_dump()`` plus union tagging and a generic per-field writer cost ~45 µs per session event
here; a function generated once per record type (straight-line attribute reads, inlined small
varints, unions dispatched on the model class) writes the same bytes several times faster.
``tests/test_contract.py`` proves byte equality with fastavro for every record type.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from schemas.avro_writer import PACK_DOUBLE, PACK_FLOAT, write_long, write_timestamp_micros

ModelWriter = Callable[[bytearray, Any], None]


class _Generator:
    """Emits one ``w_<record>`` function per record type into a shared namespace."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.env: dict[str, Any] = {"write_long": write_long, "_ts": write_timestamp_micros,
                                    "PACK_DOUBLE": PACK_DOUBLE, "PACK_FLOAT": PACK_FLOAT}
        self.named: dict[str, Any] = {}
        self.sources: list[str] = []
        self._tmp = itertools.count()
        self.entry = self.record(schema, "")

    def tmp(self) -> str:
        return f"_t{next(self._tmp)}"

    def full_name(self, schema: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', namespace)}.{name}".lstrip(".")
        return full, full.rsplit(".", 1)[0] if "." in full else ""

    def resolve(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVE:
            full = schema if "." in schema else f"{namespace}.{schema}".lstrip(".")
            return self.named[full]
        return schema

    def record(self, schema: dict[str, Any], namespace: str) -> str:
        full, ns = self.full_name(schema, namespace)
        func = "w_" + full.replace(".", "_")
        if full in self.named:
            return func
        self.named[full] = schema
        lines = [f"def {func}(buf, v):"]
        for f in schema["fields"]:
            lines += self.value(f["type"], f"v.{f['name']}", ns, 1)
        if len(lines) == 1:
            lines.append("    pass")
        self.sources.append("\n".join(lines))
        return func

    def value(self, schema: Any, expr: str, ns: str, depth: int) -> list[str]:
        pad = "    " * depth
        schema = self.resolve(schema, ns)
        if isinstance(schema, list):
            return self.union(schema, expr, ns, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if logical == "uuid":
            return self.value("string", f"str({expr})", ns, depth)
        if logical == "timestamp-micros":
            return [f"{pad}_ts(buf, {expr})"]
        if kind in ("string", "bytes"):
            t = self.tmp()
            encode = ".encode()" if kind == "string" else ""
            return [f"{pad}{t} = {expr}{encode}", *self.varint(f"len({t})", pad), f"{pad}buf += {t}"]
        if kind in ("long", "int"):
            return self.varint(expr, pad)
        if kind == "double":
            return [f"{pad}buf += PACK_DOUBLE({expr})"]
        if kind == "float":
            return [f"{pad}buf += PACK_FLOAT({expr})"]
        if kind == "boolean":
            return [f"{pad}buf.append(1 if {expr} else 0)"]
        if kind == "null":
            return []
        if kind == "record":
            return [f"{pad}{self.record(schema, ns)}(buf, {expr})"]
        if kind == "enum":
            full, _ = self.full_name(schema, ns)
            table = "E_" + full.replace(".", "_")
            self.named.setdefault(full, schema)
            self.env[table] = {s: i for i, s in enumerate(schema["symbols"])}
            t = self.tmp()
            return [f"{pad}{t} = {expr}", *self.varint(f"{table}[getattr({t}, 'value', {t})]", pad)]
        if kind in ("array", "map"):
            t, item = self.tmp(), self.tmp()
            inner = schema["items"] if kind == "array" else schema["values"]
            loop = f"for {item} in {t}:" if kind == "array" else f"for _k, {item} in {t}.items():"
            key = self.value("string", "_k", ns, depth + 2) if kind == "map" else []
            return [f"{pad}{t} = {expr}", f"{pad}if {t}:", *self.varint(f"len({t})", pad + "    "),
                    f"{pad}    {loop}", *key, *self.value(inner, item, ns, depth + 2), f"{pad}buf.append(0)"]
        raise TypeError(f"unsupported Avro type {kind!r}")

    def union(self, branches: list[Any], expr: str, ns: str, depth: int) -> list[str]:
        pad = "    " * depth
        t = self.tmp()
        null = branches.index("null") if "null" in branches else None
        others = [(i, self.resolve(b, ns)) for i, b in enumerate(branches) if b != "null"]
        lines = [f"{pad}{t} = {expr}"]
        if null is not None:
            lines += [f"{pad}if {t} is None:", f"{pad}    buf.append({null << 1})", f"{pad}else:"]
            pad, depth = pad + "    ", depth + 1
        if len(others) == 1:
            index, branch = others[0]
            return [*lines, f"{pad}buf.append({index << 1})", *self.value(branch, t, ns, depth)]
        if any(not isinstance(b, dict) or b.get("type") != "record" for _, b in others):
            raise TypeError("unions of several non-record branches are not generated")
        table = f"U{next(self._tmp)}"
        self.env[table] = {}
        for index, branch in others:
            full, _ = self.full_name(branch, ns)
            self.env[table][full] = (index << 1, self.record(branch, ns))
        lines += [f"{pad}_i, _w = {table}[type({t}).avro_name]", f"{pad}buf.append(_i)", f"{pad}_w(buf, {t})"]
        return lines

    @staticmethod
    def varint(expr: str, pad: str) -> list[str]:
        """Zig-zag varint with a one-byte fast path (most lengths, seqs and counts are small)."""
        return [f"{pad}_n = {expr}", f"{pad}if 0 <= _n < 64:", f"{pad}    buf.append(_n << 1)",
                f"{pad}else:", f"{pad}    write_long(buf, _n)"]

    def build(self) -> ModelWriter:
        namespace = dict(self.env)
        exec("\n\n".join(self.sources), namespace)  # our own generated source, from our schemas
        for table in [k for k in self.env if k.startswith("U")]:  # bind dispatch tables to functions
            namespace[table].update({name: (i, namespace[f]) for name, (i, f) in self.env[table].items()})
        writer: ModelWriter = namespace[self.entry]
        return writer


_PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def generate_model_writer(schema: dict[str, Any]) -> ModelWriter:
    """A function ``(buf, model)`` appending the Avro binary of ``model`` (whose fields match ``schema``)."""
    return _Generator(schema).build()
