"""Schema-registry port: a local file-backed registry and a Confluent-compatible REST client.

Ids in the local registry are derived from the schema's Rabin fingerprint, so every process
(agents, workers, sinks) computes the same id without coordination and ids survive restarts;
the file keeps id -> schema so readers can resolve schemas written by other versions.
"""

from __future__ import annotations

import fcntl
import json
import threading
from functools import cache
from pathlib import Path
from typing import Protocol

import httpx
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas.errors import RegistryError, UnknownSchemaId


class SchemaRegistry(Protocol):
    """What the codec needs from a registry."""

    def register(self, subject: str, schema: str) -> int: ...

    def schema_by_id(self, schema_id: int) -> str: ...


def schema_id_for(schema: str) -> int:
    """Deterministic 31-bit id from the schema's canonical-form fingerprint."""
    canonical = to_parsing_canonical_form(parse_schema(json.loads(schema), _write_hint=False))
    return int(fingerprint(canonical, "CRC-64-AVRO")[:8], 16) & 0x7FFFFFFF


@cache
def current_schemas() -> dict[int, str]:
    """Today's schemas by id: any process can read current records without a registry file."""
    from schemas.catalog import SCHEMA_FILES, schema_text

    return {schema_id_for(schema_text(name)): schema_text(name) for name in SCHEMA_FILES}


class LocalRegistry:
    """Registry kept in one JSON file (or in memory when ``path`` is None); safe across processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, list[int]] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        doc = json.loads(self.path.read_text() or "{}")
        self._schemas.update({int(k): v for k, v in doc.get("schemas", {}).items()})
        for subject, ids in doc.get("subjects", {}).items():
            known = self._subjects.setdefault(subject, [])
            known.extend(i for i in ids if i not in known)

    def _persist(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._load()  # merge what other processes registered meanwhile
            doc = {"schemas": {str(k): v for k, v in sorted(self._schemas.items())}, "subjects": self._subjects}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            tmp.replace(self.path)

    def register(self, subject: str, schema: str) -> int:
        schema_id = schema_id_for(schema)
        with self._lock:
            existing = self._schemas.get(schema_id)
            if existing is not None and existing != schema and schema_id_for(existing) != schema_id:
                raise RegistryError(f"schema id collision for {schema_id}")
            if existing is None or schema_id not in self._subjects.get(subject, []):
                self._schemas.setdefault(schema_id, schema)
                self._subjects.setdefault(subject, []).append(schema_id)
                self._persist()
        return schema_id

    def schema_by_id(self, schema_id: int) -> str:
        with self._lock:
            if schema_id not in self._schemas:
                self._load()
            found = self._schemas.get(schema_id) or current_schemas().get(schema_id)
            if found is None:
                raise UnknownSchemaId(schema_id)
            return found

    def subjects(self) -> dict[str, list[int]]:
        with self._lock:
            self._load()
            return {s: list(ids) for s, ids in self._subjects.items()}


class RestRegistry:
    """Client for a Confluent-compatible schema registry (the subset the codec needs)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def register(self, subject: str, schema: str) -> int:
        key = (subject, schema)
        if key not in self._ids:
            try:
                response = self._http.post(
                    f"/subjects/{subject}/versions",
                    json={"schema": schema},
                    headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise RegistryError(f"registering {subject} failed: {exc}") from None
            self._ids[key] = int(response.json()["id"])
            self._by_id[self._ids[key]] = schema
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self._by_id:
            try:
                response = self._http.get(f"/schemas/ids/{schema_id}")
            except httpx.HTTPError as exc:
                raise RegistryError(f"schema registry unreachable: {exc}") from None
            if response.status_code == 404:
                raise UnknownSchemaId(schema_id)
            if response.is_error:
                raise RegistryError(f"schema registry answered {response.status_code}: {response.text}")
            self._by_id[schema_id] = response.json()["schema"]
        return self._by_id[schema_id]


def registry_for(url: str, data_dir: Path) -> SchemaRegistry:
    """The REST registry when a URL is configured, else the local file registry of ``data_dir``."""
    return RestRegistry(url) if url else LocalRegistry(data_dir / "registry.json")
