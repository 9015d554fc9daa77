"""Reading one ClickHouse HTTP request the way clickhouse-connect (and curl) send it.

The SQL arrives in the URL (``query=``), in the body, or both (the statement in the URL and its
data in the body); with large bind parameters clickhouse-connect moves the SQL and the
parameters into a ``multipart/form-data`` body. Bodies may be chunked and compressed.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

Headers = Mapping[str, str] | Message
"""http.server's header message, or a plain mapping."""

#: URL keys that steer the HTTP exchange rather than name an engine setting
CLIENT_ONLY = frozenset({
    "query", "database", "session_id", "query_id", "compress", "decompress", "enable_http_compression",
    "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms", "default_format",
    "user", "password", "quota_key", "session_timeout", "session_check", "client_protocol_version", "buffer_size",
    "date_time_input_format", "output_format_json_quote_64bit_integers",
})


class BadRequest(Exception):
    """The request cannot be read (HTTP 400); ``str`` is ClickHouse's error text."""


class BodyTooLarge(Exception):
    """A request body over the limit for its sender (HTTP 413)."""


@dataclass
class Request:
    text: bytes  # the SQL, followed by insert data when there is any
    params: dict[str, str]  # bind parameters, without the ``param_`` prefix
    settings: dict[str, str]  # everything else in the URL or form: engine settings
    database: str | None
    query_id: str | None


def parse(query_string: str, headers: Headers, body: bytes) -> Request:
    """The statement, bind parameters and settings of one request."""
    args = dict(parse_qsl(query_string, keep_blank_values=True))
    try:
        body = _decoded(body, headers.get("Content-Encoding"))
        form = _form_fields(headers.get("Content-Type") or "", body)
    except (ValueError, OSError, RuntimeError) as exc:  # zlib/lz4/zstd each raise their own kind
        raise BadRequest(f"Code: 27. DB::Exception: cannot read the request body: {exc}. "
                         "(CANNOT_PARSE_INPUT_ASSERTION_FAILED)") from None
    if form is not None:
        args.update(form)
        body = b""
    text = args.get("query", "").encode()
    if body:
        text = text + b"\n" + body if text else body
    return Request(text=text, params={k[6:]: v for k, v in args.items() if k.startswith("param_")},
                   settings={k: v for k, v in args.items() if k not in CLIENT_ONLY and not k.startswith("param_")},
                   database=args.get("database") or None, query_id=args.get("query_id") or None)


def credentials(headers: Headers, query_string: str) -> tuple[str, str]:
    """(user, password) from basic auth, ``X-ClickHouse-User``/``-Key`` or the URL, as ClickHouse reads them."""
    auth = headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("Code: 516. DB::Exception: malformed Authorization header. "
                             "(AUTHENTICATION_FAILED)") from None
        return user, password
    if headers.get("X-ClickHouse-User") or headers.get("X-ClickHouse-Key"):
        return headers.get("X-ClickHouse-User") or "", headers.get("X-ClickHouse-Key") or ""
    args = dict(parse_qsl(query_string, keep_blank_values=True))
    return args.get("user", ""), args.get("password", "")


def read_body(req: BaseHTTPRequestHandler, limit: int | None) -> bytes:
    """The request body, plain or chunked (clickhouse-connect streams inserts chunked)."""
    if "chunked" in (req.headers.get("Transfer-Encoding") or "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise BadRequest("Code: 27. DB::Exception: malformed chunked body. (CANNOT_PARSE_INPUT)") from None
            total += size
            if limit is not None and total > limit:
                raise BodyTooLarge(f"a request body over {limit} bytes")
            if size == 0:
                while req.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(req.rfile.read(size))
            req.rfile.readline()
    try:
        length = int(req.headers.get("Content-Length") or 0)
    except ValueError:
        raise BadRequest("Code: 27. DB::Exception: malformed Content-Length. (CANNOT_PARSE_INPUT)") from None
    if limit is not None and length > limit:
        raise BodyTooLarge(f"a request body over {limit} bytes")
    return req.rfile.read(length) if length > 0 else b""


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
