"""Avro codec in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

``decode_dict`` is the hot path for sinks (no pydantic); ``decode`` validates into the models.
"""

from __future__ import annotations

import io
import json
import struct
from functools import cache
from typing import Any, TypeVar

from fastavro import parse_schema, schemaless_reader
from pydantic import ValidationError

from schemas import models
from schemas.avro_writer import Writer, compile_writer
from schemas.catalog import parsed_schema, raw_schemas, schema_text
from schemas.errors import BadMagicByte, CodecError, InvalidRecord, TruncatedMessage
from schemas.model_writer import ModelWriter, generate_model_writer
from schemas.registry import SchemaRegistry

HEADER = struct.Struct(">bI")
M = TypeVar("M", bound=models.AvroModel)

MODEL_BY_NAME: dict[str, type[models.AvroModel]] = {
    m.avro_name: m
    for m in (models.SessionEvent, models.TrajectoryCompleted, models.TrajectoryJudged,
              models.RewardAssigned, models.DeadLetter)
}


@cache
def model_writer(avro_name: str) -> ModelWriter:
    """The generated writer that reads a model of ``avro_name`` directly (no dump, no tagging)."""
    return generate_model_writer(raw_schemas()[avro_name])


@cache
def compiled_writer(avro_name: str) -> Writer:
    """The compiled writer of one top-level record (byte-identical to fastavro, several times faster)."""
    return compile_writer(raw_schemas()[avro_name])


def _tag(model: models.AvroModel, data: dict[str, Any]) -> dict[str, Any]:
    """Add ``-type`` to every nested record so fastavro resolves unions without trying branches."""
    data["-type"] = model.avro_name
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, models.AvroModel):
            _tag(value, data[name])
        elif isinstance(value, list) and value and isinstance(value[0], models.AvroModel):
            for item, item_data in zip(value, data[name], strict=True):
                _tag(item, item_data)
    return data


def to_avro(model: models.AvroModel) -> dict[str, Any]:
    """Model -> plain data for fastavro (pydantic's fast dump, then union tags)."""
    return _tag(model, model.model_dump())


class Codec:
    """Encodes records for a topic and decodes any record whose writer schema the registry knows."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, Any] = {}

    def schema_id(self, topic: str, avro_name: str) -> int:
        key = (topic, avro_name)
        if key not in self._ids:
            self._ids[key] = self.registry.register(f"{topic}-value", schema_text(avro_name))
        return self._ids[key]

    def encode(self, topic: str, record: models.AvroModel) -> bytes:
        buf = bytearray(HEADER.pack(0, self.schema_id(topic, record.avro_name)))
        model_writer(record.avro_name)(buf, record)
        return bytes(buf)

    def _writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._writers:
            text = self.registry.schema_by_id(schema_id)
            doc = json.loads(text)
            name = doc["name"] if "." in doc["name"] else f"{doc.get('namespace', '')}.{doc['name']}".lstrip(".")
            # Same schema as ours: read without resolution (several times faster).
            current = name in MODEL_BY_NAME and text == schema_text(name)
            writer = parsed_schema(name) if current else parse_schema(json.loads(text))
            self._writers[schema_id] = (writer, None if current else parsed_schema(name)
                                        if name in MODEL_BY_NAME else None)
        return self._writers[schema_id]

    def decode_dict(self, raw: bytes | None) -> tuple[str, dict[str, Any]]:
        """Bytes -> (record name, data), read with our current schema of that record."""
        if raw is None or len(raw) < HEADER.size:
            raise TruncatedMessage(f"{0 if raw is None else len(raw)} bytes, the header alone needs 5")
        magic, schema_id = HEADER.unpack_from(raw)
        if magic != 0:
            raise BadMagicByte(magic)
        writer, reader = self._writer_schema(schema_id)
        name = writer["name"]
        body = io.BytesIO(raw)
        body.seek(HEADER.size)
        try:
            data = schemaless_reader(body, writer, reader)
        except (EOFError, StopIteration, IndexError, struct.error) as exc:
            raise TruncatedMessage(f"{name} body ends early ({exc.__class__.__name__})") from None
        except Exception as exc:  # any decoder failure (ValueError, OverflowError, ...) is the record's fault
            raise InvalidRecord(f"{name} body does not decode: {exc.__class__.__name__}: {exc}") from None
        if body.tell() != len(raw):  # ClickHouse would read these bytes as the next record: refuse here too
            raise InvalidRecord(f"{name} body is followed by {len(raw) - body.tell()} trailing bytes")
        if not isinstance(data, dict):  # every writer schema is a record
            raise InvalidRecord(f"{name} body decodes to {type(data).__name__}, not a record")
        return name, data

    def is_canonical(self, raw: bytes, record: models.AvroModel) -> bool:
        """Whether ``raw``'s body is byte for byte what our writer makes of ``record`` (checked for
        today's schema only). fastavro reads some non-canonical bodies that ClickHouse reads otherwise
        or refuses (a negative union or enum index wraps around in Python, duplicate map keys collapse):
        accepting only the canonical form leaves no record the two decoders read differently."""
        _, reader = self._writer_schema(HEADER.unpack_from(raw)[1])
        if reader is not None:
            return True  # an older writer schema: re-encoding it would not give its bytes back
        buf = bytearray(raw[:HEADER.size])
        model_writer(record.avro_name)(buf, record)
        return buf == raw

    def decodes_as(self, raw: bytes | None, avro_name: str) -> bool:
        """Whether ``raw`` decodes to a record named ``avro_name`` (checks bodies ClickHouse refused)."""
        try:
            return self.decode_dict(raw)[0] == avro_name
        except CodecError:
            return False

    def current_body(self, raw: bytes | None, topic: str, avro_name: str) -> bytes | None:
        """The Avro body of ``raw`` in today's schema of ``avro_name``: as is when it was written with
        it, else decoded and re-encoded (schema evolution); None when it is not such a record."""
        if raw is None or len(raw) < HEADER.size or raw[0] != 0:
            return None
        if HEADER.unpack_from(raw)[1] == self.schema_id(topic, avro_name):
            return raw[HEADER.size:]
        try:
            record: models.AvroModel = self.decode(raw)
        except CodecError:
            return None
        if record.avro_name != avro_name:
            return None
        buf = bytearray()
        model_writer(avro_name)(buf, record)
        return bytes(buf)

    def decode(self, raw: bytes | None, expect: type[M] | None = None) -> M:
        name, data = self.decode_dict(raw)
        model = MODEL_BY_NAME.get(name)
        if model is None or (expect is not None and model is not expect):
            wanted = expect.avro_name if expect else "a known record"
            raise InvalidRecord(f"record {name} where {wanted} was expected")
        try:
            return model.model_validate(data)  # type: ignore[return-value]
        except ValidationError as exc:
            raise InvalidRecord(f"{name} fails validation: {exc.errors()[0]['msg']} at "
                                f"{'.'.join(map(str, exc.errors()[0]['loc']))}") from None
