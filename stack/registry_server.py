"""The embedded stack's schema registry over HTTP: the Confluent REST subset that tools use.

Our processes share the file-backed ``LocalRegistry`` directly; this server exists so standard
Kafka tools (kcat ``-s value=avro -r URL``, Kafka UIs, Confluent deserializers) can decode the
topics of the embedded stack exactly as they would against a Confluent registry in production.
Served on loopback only: the embedded stack is one machine.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import RegistryError, UnknownSchemaId
from schemas.registry import LocalRegistry

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_SCHEMA_BY_ID = re.compile(r"^/schemas/ids/(\d+)(/schema)?$")
_VERSIONS = re.compile(r"^/subjects/([^/]+)/versions$")
_VERSION = re.compile(r"^/subjects/([^/]+)/versions/([^/]+)(/schema)?$")


class RegisterRequest(BaseModel):
    """Body of POST /subjects/{s}/versions; only Avro is served (no references)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_text: str = Field(alias="schema")
    schema_type: str = Field("AVRO", alias="schemaType")


class ApiError(Exception):
    """An error answered in Confluent's shape: HTTP status plus ``error_code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RegistryApi:
    """The REST resources as plain methods over a ``LocalRegistry`` (no HTTP in here)."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry

    def schema(self, schema_id: int) -> dict[str, Any]:
        try:
            return {"schema": self.registry.schema_by_id(schema_id)}
        except UnknownSchemaId:
            raise ApiError(404, 40403, f"Schema {schema_id} not found") from None

    def subjects(self) -> list[str]:
        return sorted(self.registry.subjects())

    def _ids(self, subject: str) -> list[int]:
        ids = self.registry.subjects().get(subject)
        if not ids:
            raise ApiError(404, 40401, f"Subject '{subject}' not found.")
        return ids

    def versions(self, subject: str) -> list[int]:
        return list(range(1, len(self._ids(subject)) + 1))

    def version(self, subject: str, version: str) -> dict[str, Any]:
        ids = self._ids(subject)
        if version in ("latest", "-1"):
            number = len(ids)
        elif version.isdigit() and 1 <= int(version) <= len(ids):
            number = int(version)
        else:
            raise ApiError(404, 40402, f"Version {version} not found.")
        schema_id = ids[number - 1]
        return {"subject": subject, "version": number, "id": schema_id,
                "schema": self.registry.schema_by_id(schema_id)}

    def register(self, subject: str, body: bytes) -> dict[str, Any]:
        try:
            request = RegisterRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise ApiError(422, 42201, f"Invalid schema: {exc}") from None
        if request.schema_type.upper() != "AVRO":
            raise ApiError(422, 42201, f"only AVRO schemas are served, not {request.schema_type}")
        try:
            return {"id": self.registry.register(subject, request.schema_text)}
        except RegistryError as exc:
            raise ApiError(409, 409, str(exc)) from None
        except Exception as exc:  # fastavro's parse errors have no common base worth naming
            raise ApiError(422, 42201, f"Invalid schema: {exc}") from None

    def get(self, path: str) -> Any:
        if path in ("", "/"):
            return {}
        if path == "/subjects":
            return self.subjects()
        if path == "/config":
            return {"compatibilityLevel": "NONE"}
        if m := _SCHEMA_BY_ID.match(path):
            found = self.schema(int(m[1]))
            return found["schema"] if m[2] else found
        if m := _VERSIONS.match(path):
            return self.versions(unquote(m[1]))
        if m := _VERSION.match(path):
            found = self.version(unquote(m[1]), m[2])
            return found["schema"] if m[3] else found
        raise ApiError(404, 404, f"HTTP 404 Not Found: {path}")

    def post(self, path: str, body: bytes) -> Any:
        if m := _VERSIONS.match(path):
            return self.register(unquote(m[1]), body)
        raise ApiError(405, 405, f"HTTP 405 Method Not Allowed: POST {path}")


class RegistryServer:
    """Serves ``<data_dir>/registry.json`` on a loopback port until ``stop``."""

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        api = RegistryApi(LocalRegistry(path))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def _answer(self, status: int, doc: Any) -> None:
                body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, call: Any) -> None:
                try:
                    self._answer(200, call())
                except ApiError as exc:
                    self._answer(exc.status, {"error_code": exc.code, "message": exc.message})
                except Exception as exc:
                    log.exception("registry request failed")
                    self._answer(500, {"error_code": 50001, "message": str(exc)})

            def do_GET(self) -> None:
                self._serve(lambda: api.get(urlparse(self.path).path.rstrip("/")))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._serve(lambda: api.post(urlparse(self.path).path.rstrip("/"), body))

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # an AF_INET server
        return f"http://{host}:{port}"

    def start(self) -> RegistryServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="schema-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
