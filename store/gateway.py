"""A ClickHouse-HTTP-compatible endpoint over a chDB directory.

chDB lets one process open a directory. ``art up`` owns it and serves this gateway so that every
other process (sink, CLI, trainer) uses an ordinary ``http://`` clickhouse-connect client, the same
code path as against a ClickHouse server.

Two kinds of caller: a POST that carries this run's writer secret (``store/secret.py``) runs on the
writer session; every other request (GET, no credentials, ``readonly`` asked for) is a reader and
runs on a ``readonly = 1`` session after ClickHouse's parser has accepted it as one read
(``store/readers.py``). Readers get a time limit and run beside the writer, so no reader stalls
the sink, and the gateway refuses requests made by its own engine (``url()`` calling back).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from store import http_request
from store import secret as writer_secret
from store.readers import ReaderSessions

log = logging.getLogger(__name__)

_INSERT = re.compile(rb"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)[ \t]*\n", re.I | re.S)
_WRITER_SETTINGS = {"insert_deduplication_token", "insert_deduplicate", "max_result_rows", "max_execution_time",
                    "max_threads", "final", "input_format_avro_allow_missing_fields", "max_insert_threads"}
READER_BODY_LIMIT = 16 << 20  # a reader sends SQL and parameters, never data
_HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class GatewayError(Exception):
    """A refusal of the gateway itself, as ClickHouse would word it."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}")
        self.status, self.code = status, code


class ChdbGateway:
    """Serves one chDB directory over HTTP on a loopback port until ``stop``.

    ``secret`` lets its holders write; without one the gateway serves readers only and never
    opens a writer session. ``card`` is where ``start`` publishes the secret for writer processes
    (mode 0600) and ``stop`` removes it.
    """

    def __init__(self, path: str, host: str = "127.0.0.1", port: int = 0, *, secret: str | None = None,
                 card: Path | None = None, reader_timeout_s: float = 30.0, readers: int = 4) -> None:
        import chdb

        self.secret = secret if secret is not None or card is None else writer_secret.new_secret()
        self._card = card
        self._path = path
        self._conn = chdb.connect(path) if self.secret else None
        self._lock = threading.Lock()
        self.readers = ReaderSessions(path, size=readers, timeout_s=reader_timeout_s)
        self._connections: set[socket.socket] = set()
        self._server = _Server((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="chdb-gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # an AF_INET server
        return f"http://{host}:{port}"

    def start(self) -> ChdbGateway:
        if self._card is not None and self.secret:
            writer_secret.publish(self._card, self.url, self.secret)
        self._thread.start()
        return self

    def stop(self, close_engine: bool = True) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve loop that must have started
            self._server.shutdown()
        self._server.server_close()
        for conn in list(self._connections):  # keep-alive clients must see the store go away too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._card is not None and self.secret:
            writer_secret.withdraw(self._card, self.secret)
        if close_engine:
            self.readers.close()
            with self._lock:
                if self._conn is not None:
                    self._conn.close()

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(req.path)
        if url.path == "/ping":
            return _reply(req, 200, b"Ok.\n")
        try:
            if (req.headers.get("User-Agent") or "").startswith("ClickHouse/"):
                raise GatewayError(403, 497, "the gateway serves no request made by its own engine (url() "
                                             "calling back would hold the engine). (ACCESS_DENIED)")
            writer = self._authenticated(req, url.query) and method == "POST"  # GET never writes
            try:
                body = http_request.read_body(req, None if writer else READER_BODY_LIMIT)
            except http_request.BodyTooLarge as exc:
                raise GatewayError(413, 307, f"{exc}: readers send SQL, not data. (TOO_MANY_BYTES)") from None
            request = http_request.parse(url.query, req.headers, body)
            ran: bytes | str
            if writer and request.settings.get("readonly", "0") in ("0", ""):
                ran, out = self._write(request)
            else:
                ran, out = self.readers.query(request.text.decode(), request.params, request.database,
                                              request.settings)
        except Exception as exc:  # refusals and engine errors alike become ClickHouse's error reply
            return _error(req, exc)
        _reply(req, 200, out, {"X-ClickHouse-Format": _trailing_format(ran) or "TabSeparated",
                               "X-ClickHouse-Timezone": "UTC",
                               "X-ClickHouse-Query-Id": request.query_id or str(uuid.uuid4()),
                               "X-ClickHouse-Server-Display-Name": "art-chdb-gateway",
                               "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "written_rows": "0"})})

    def _authenticated(self, req: BaseHTTPRequestHandler, query: str) -> bool:
        """True for this run's writer secret, False for no credentials; wrong ones are refused."""
        user, password = http_request.credentials(req.headers, query)
        if not password and user in ("", "default"):
            return False
        if self.secret and hmac.compare_digest(password.encode(), self.secret.encode()):
            return True
        raise GatewayError(403, 516, "Authentication failed: the writer secret is wrong or this gateway takes "
                                     "none (send no credentials to read). (AUTHENTICATION_FAILED)")

    def _write(self, request: http_request.Request) -> tuple[bytes, bytes]:
        settings = {k: v for k, v in request.settings.items() if k in _WRITER_SETTINGS}
        insert = _INSERT.match(request.text)
        if insert:
            out = self._insert(insert.group("target").decode(), insert.group("fmt").decode(),
                               request.text[insert.end():], settings, request.database)
            return b"", out
        sql = request.text.decode()
        extra = {k: v for k, v in settings.items() if k != "insert_deduplication_token"}
        if extra and not _trailing_format(request.text):
            sql = f"{sql} SETTINGS " + ", ".join(f"{k} = {_quote(v)}" for k, v in extra.items())
        return request.text, self._run(sql, request.params, request.database)

    def _insert(self, target: str, fmt: str, data: bytes, settings: dict[str, str], database: str | None) -> bytes:
        with tempfile.NamedTemporaryFile(suffix=f".{fmt.lower()}", delete=False) as tmp:
            tmp.write(data)
        try:
            clause = ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items())
            sql = f"INSERT INTO {target} FROM INFILE {_quote(tmp.name)}"
            sql += f" SETTINGS {clause}" if clause else ""
            return self._run(sql + f" FORMAT {fmt}", None, database)
        finally:
            os.unlink(tmp.name)

    def _run(self, sql: str, params: dict[str, str] | None, database: str | None) -> bytes:
        """One writer statement under the writer lock (a chDB session is not thread-safe)."""
        import chdb

        assert self._conn is not None
        with self._lock:
            try:
                if database:
                    self._conn.query(f"USE `{database}`", "TabSeparated")
                return self._conn.query(sql, "TabSeparated", params=params or {}).bytes() or b""
            except Exception:
                # chDB hands a failed query's partial output to the next query of the session
                self._conn.close()
                self._conn = chdb.connect(self._path)
                raise


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is one debug line; anything else is logged with its traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, _HANGUPS):
            log.debug("client %s went away: %s", client_address, exc.__class__.__name__)
        else:
            log.exception("gateway request from %s failed", client_address)


def _handler(gateway: ChdbGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 300  # an idle keep-alive connection gives its thread back

        def setup(self) -> None:
            super().setup()
            gateway._connections.add(self.connection)

        def finish(self) -> None:
            gateway._connections.discard(self.connection)
            with contextlib.suppress(*_HANGUPS):
                super().finish()

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet, and never a query string (it may hold a key)
            log.debug("%s %s", self.command, urlparse(self.path or "").path)

        def do_GET(self) -> None:
            gateway.handle(self, "GET")

        def do_POST(self) -> None:
            gateway.handle(self, "POST")

    return Handler


def _error(req: BaseHTTPRequestHandler, exc: Exception) -> None:
    message = str(exc).strip() or exc.__class__.__name__
    found = re.search(r"Code: (\d+)", message)
    message = message[found.start():] if found else f"Code: 1000. DB::Exception: {message}"
    code = found.group(1) if found else "1000"
    status = exc.status if isinstance(exc, GatewayError) else 400 if isinstance(exc, http_request.BadRequest) else 500
    _reply(req, status, message.encode() + b"\n", {"X-ClickHouse-Exception-Code": code})


def _reply(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    try:
        req.send_response(status)
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
    except _HANGUPS as exc:
        log.debug("client %s went away before the reply: %s", req.client_address, exc.__class__.__name__)
        req.close_connection = True


def _trailing_format(text: bytes | str) -> str | None:
    tail = text[-200:].encode() if isinstance(text, str) else text[-200:]
    match = re.search(rb"\bFORMAT\s+(\w+)\s*;?\s*$", tail, re.I)
    return match.group(1).decode() if match else None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
