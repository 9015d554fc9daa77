"""A ClickHouse-HTTP-compatible endpoint over a chDB directory.

chDB lets one process open a directory. ``art up`` owns it and serves this gateway so that every
other process (sink, CLI, trainer) uses an ordinary ``http://`` clickhouse-connect client, the same
code path as against a ClickHouse server. It speaks the subset clickhouse-connect uses: queries in
the URL or body, ``param_*`` bind values, ``database``, ``readonly`` and insert settings, and
``INSERT … FORMAT <fmt>`` with the data in the body.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import gzip
import json
import logging
import os
import re
import socket
import tempfile
import threading
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

log = logging.getLogger(__name__)

_INSERT = re.compile(rb"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)[ \t]*\n", re.I | re.S)
_READ_ONLY = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)
_PASSED_SETTINGS = {"insert_deduplication_token", "insert_deduplicate", "max_result_rows", "max_execution_time",
                    "max_threads", "readonly", "final", "input_format_avro_allow_missing_fields",
                    "max_insert_threads"}
_CLIENT_ONLY = {"query", "database", "session_id", "query_id", "compress", "decompress", "enable_http_compression",
                "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
                "default_format", "user", "password", "session_timeout", "session_check",
                "date_time_input_format", "output_format_json_quote_64bit_integers"}


_LITERALS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", re.S)


def is_multi_statement(sql: str) -> bool:
    """True when a ';' outside literals and comments is followed by more SQL."""
    body = _LITERALS.sub(" ", sql)
    return ";" in body.rstrip().rstrip(";")


def is_read_only(sql: str) -> bool:
    """True for one statement that cannot write (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)."""
    return bool(_READ_ONLY.match(sql)) and not is_multi_statement(sql)


class ChdbGateway:
    """Serves one chDB directory over HTTP on a loopback port until ``stop``."""

    def __init__(self, path: str, host: str = "127.0.0.1", port: int = 0) -> None:
        import chdb

        os.makedirs(path, exist_ok=True)
        self._conn = chdb.connect(path)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                gateway._connections.add(self.connection)

            def finish(self) -> None:
                gateway._connections.discard(self.connection)
                super().finish()

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the stack logs what matters
                log.debug(fmt, *args)

            def do_GET(self) -> None:
                gateway._handle(self, b"")

            def do_POST(self) -> None:
                gateway._handle(self, _read_body(self))

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="chdb-gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ChdbGateway:
        self._thread.start()
        return self

    def stop(self, close_engine: bool = True) -> None:
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._connections):  # keep-alive clients must see the store go away too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if close_engine:
            with self._lock:
                self._conn.close()

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None,
              database: str | None = None) -> bytes:
        """Run one statement under the engine lock (chDB connections are not thread-safe)."""
        with self._lock:
            if database:
                self._conn.query(f"USE `{database}`", "TabSeparated")
            result = self._conn.query(sql, fmt, params=params or {})
            return result.bytes() or b""

    def _handle(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        url = urlparse(req.path)
        if url.path == "/ping":
            return self._reply(req, 200, b"Ok.\n")
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = _decoded(body, req.headers.get("Content-Encoding"))
            form = _form_fields(req.headers.get("Content-Type") or "", body)
        except ValueError as exc:
            return self._reply(req, 400, f"Code: 27. DB::Exception: {exc}. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)\n"
                               .encode(), {"X-ClickHouse-Exception-Code": "27"})
        if form is not None:  # clickhouse-connect moves large bind parameters (and the SQL) into a form body
            args.update(form)
            body = b""
        text = args.get("query", "").encode()
        if body:
            text = text + b"\n" + body if text else body
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        settings = {k: v for k, v in args.items() if k in _PASSED_SETTINGS}
        database = args.get("database") or None
        try:
            out = self._execute(text, params, settings, database)
        except Exception as exc:  # every engine error becomes ClickHouse's error reply
            message = str(exc).strip() or exc.__class__.__name__
            code = re.search(r"Code: (\d+)", message)
            if code:
                message = message[code.start():]
            else:
                message = f"Code: {code.group(1) if code else 1000}. DB::Exception: {message}"
            return self._reply(req, 500, message.encode() + b"\n",
                               {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"})
        headers = {"X-ClickHouse-Format": _trailing_format(text) or "TabSeparated",
                   "X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Query-Id": args.get("query_id") or str(uuid.uuid4()),
                   "X-ClickHouse-Server-Display-Name": "art-chdb-gateway",
                   "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "written_rows": "0"})}
        self._reply(req, 200, out, headers)

    def _execute(self, text: bytes, params: dict[str, str], settings: dict[str, str],
                 database: str | None) -> bytes:
        insert = _INSERT.match(text)
        if insert:
            if settings.get("readonly", "0") not in ("0", ""):
                raise PermissionError("Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)")
            return self._insert(insert.group("target").decode(), insert.group("fmt").decode(),
                                text[insert.end():], settings, database)
        sql = text.decode()
        if is_multi_statement(sql):
            raise ValueError("Code: 62. DB::Exception: Multi-statements are not allowed. (SYNTAX_ERROR)")
        if settings.get("readonly", "0") not in ("0", "") and not is_read_only(sql):
            raise PermissionError("Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)")
        extra = {k: v for k, v in settings.items() if k not in ("readonly", "insert_deduplication_token")}
        if extra and not _trailing_format(text):
            sql = f"{sql} SETTINGS " + ", ".join(f"{k} = {_quote(v)}" for k, v in extra.items())
        return self.query(sql, "TabSeparated", params, database)

    def _insert(self, target: str, fmt: str, data: bytes, settings: dict[str, str], database: str | None) -> bytes:
        with tempfile.NamedTemporaryFile(suffix=f".{fmt.lower()}", delete=False) as tmp:
            tmp.write(data)
        try:
            clause = ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items() if k != "readonly")
            sql = f"INSERT INTO {target} FROM INFILE {_quote(tmp.name)}"
            sql += f" SETTINGS {clause}" if clause else ""
            return self.query(sql + f" FORMAT {fmt}", "TabSeparated", None, database)
        finally:
            os.unlink(tmp.name)

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        req.send_response(status)
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    """The request body, plain or chunked (clickhouse-connect streams inserts chunked)."""
    if "chunked" in (req.headers.get("Transfer-Encoding") or "").lower():
        parts: list[bytes] = []
        while True:
            size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while req.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(req.rfile.read(size))
            req.rfile.readline()
    length = int(req.headers.get("Content-Length") or 0)
    return req.rfile.read(length) if length else b""


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """A request body without its Content-Encoding (clients that compress inserts)."""
    encoding = (encoding or "identity").strip().lower()
    if not body or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":  # lz4 and zstd come with clickhouse-connect
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
        except ImportError:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        return bytes(zstd.decompress(body))
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _form_fields(content_type: str, body: bytes) -> dict[str, str] | None:
    """The fields of a form body (``query``, ``param_*``), or None when the body is not a form.

    clickhouse-connect sends ``multipart/form-data`` once its bind parameters pass ~4 KB; the
    urlencoded form is what curl and browsers send. External-data file parts are refused: the
    chDB engine has no external tables (clickhouse-connect's own chdb backend refuses them too).
    """
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    if kind != "multipart/form-data":
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise ValueError("a multipart/form-data part without a name")
        if part.get_filename() is not None:
            raise ValueError(f"external data ({name!r}) is not supported by the chDB gateway")
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode(part.get_content_charset() or "utf-8") if isinstance(payload, bytes) else ""
    return fields


def _trailing_format(text: bytes) -> str | None:
    match = re.search(rb"\bFORMAT\s+(\w+)\s*;?\s*$", text[-200:], re.I)
    return match.group(1).decode() if match else None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
