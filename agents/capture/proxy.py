"""`art proxy`: an OpenAI-compatible recording proxy (aiohttp server, aiohttp client upstream).

The agent changes its base URL and nothing else. Requests and responses pass through unchanged
(streams chunk by chunk) except: ``X-ART-*`` headers are not forwarded, a streamed request asks
the upstream for usage (the extra usage chunk is not shown to a client that did not ask), and
every chat response carries ``X-ART-Session``. The Authorization header is forwarded and never
stored or logged. Recording never changes what the agent gets: a body we cannot read is forwarded
as is and dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.capture.chat import MappingError, StreamAccumulator, completion_from_body
from agents.capture.deadletters import RAW_LIMIT, DeadLetters
from agents.capture.http import json_error, read_limited
from agents.capture.sessions import Call, Identity, SessionBook, UnknownSession
from schemas.models import SessionStatus, utcnow

log = logging.getLogger(__name__)

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding"}
DROPPED_RESPONSE = HOP_BY_HOP | {"content-encoding"}
SESSION_HEADER = "X-ART-Session"


def identity_from(headers: Any) -> Identity:
    return Identity(session_id=headers.get("X-ART-Session") or None, agent=headers.get("X-ART-Agent") or "proxy",
                    group=headers.get("X-ART-Group") or None, objective=headers.get("X-ART-Objective") or None)


def forwarded_headers(headers: Any) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items()
                       if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-art-"))


def response_headers(headers: Any) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in DROPPED_RESPONSE)


class CompleteRequest(BaseModel):
    """Body of ``POST /v1/art/sessions/{id}/complete``."""

    model_config = ConfigDict(extra="forbid")

    status: SessionStatus | None = None
    final_answer: str | None = None
    outcome: str | None = Field(None, max_length=4096)
    reward: float | None = None

    def model_post_init(self, context: Any) -> None:
        if self.reward is not None and not math.isfinite(self.reward):
            raise ValueError("reward must be a finite number")


_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)[-_][\w\-*]{6,}", re.I)


def redact(text: str, authorization: str | None) -> str:
    """Upstream errors may quote the key (OpenAI: "Incorrect API key provided: sk-ab***yz"): never keep it."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    if len(token) >= 6:
        text = text.replace(token, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _error_text(status: int, data: bytes, authorization: str | None) -> str:
    try:
        message = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = data[:500].decode("utf-8", "replace")
    return redact(f"upstream answered {status}: {message}", authorization)


class RecordingProxy:
    """The aiohttp application; ``app`` is served by ``agents.capture.run``."""

    def __init__(self, upstream: str, book: SessionBook, dead: DeadLetters, *, max_body_bytes: int,
                 sweep_interval_s: float = 5.0, timeout_s: float = 600.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.book = book
        self.dead = dead
        self.max_body_bytes = max_body_bytes
        self.sweep_interval_s = sweep_interval_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
        self.client: aiohttp.ClientSession | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.calls = 0
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/art/sessions/{session_id}/complete", self.complete)
        self.app.router.add_get("/v1/art/health", self.health)
        self.app.router.add_route("*", "/v1/{tail:.*}", self.passthrough)
        self.app.on_startup.append(self._start)
        self.app.on_shutdown.append(self._shutdown)

    def _target(self, request: web.Request) -> str:
        return self.upstream + request.path_qs[len("/v1"):]

    async def _start(self, app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self.client = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=True,
                                            cookie_jar=aiohttp.DummyCookieJar())  # one jar would mix agents' cookies
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def _shutdown(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        closed = await self.book.close_all()
        log.info("proxy stopping: completed %d open sessions", closed)
        if self.client is not None:
            await self.client.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.book.sweep()
            except Exception:  # a sweep failure must not end sweeping
                log.exception("idle sweep failed")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "open_sessions": len(self.book.open), "calls": self.calls,
                                  "dead_letters": self.dead.count, "upstream": self.upstream})

    # --- control ----------------------------------------------------------------------------

    async def complete(self, request: web.Request) -> web.Response:
        raw, too_big = await read_limited(request, 64 * 1024)
        if too_big:
            await self.dead.put(raw, "complete: body larger than 65536 bytes")
            return json_error(413, "body larger than 65536 bytes")
        try:
            body = CompleteRequest.model_validate_json(raw or b"{}")
        except (ValidationError, ValueError) as exc:
            reason = f"complete: invalid body: {str(exc).splitlines()[0]}"
            await self.dead.put(raw, reason)
            return json_error(400, reason)
        try:
            result = await self.book.complete(request.match_info["session_id"], status=body.status,
                                              final_answer=body.final_answer, outcome=body.outcome, reward=body.reward)
        except UnknownSession:
            return json_error(404, f"no open session {request.match_info['session_id']!r}")
        return web.json_response(result)

    # --- passthrough ------------------------------------------------------------------------

    async def passthrough(self, request: web.Request) -> web.StreamResponse:
        """Any other /v1 path (``/v1/models``, embeddings, …): forwarded both ways, not recorded."""
        raw, too_big = await read_limited(request, self.max_body_bytes)
        if too_big:
            return json_error(413, f"request body larger than {self.max_body_bytes} bytes")
        assert self.client is not None
        try:
            upstream = await self.client.request(request.method, self._target(request), data=raw or None,
                                                 headers=forwarded_headers(request.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return json_error(502, f"upstream unreachable: {exc.__class__.__name__}")
        async with upstream:
            response = web.StreamResponse(status=upstream.status, headers=response_headers(upstream.headers))
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    # --- chat -------------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw, too_big = await read_limited(request, self.max_body_bytes)
        if too_big:
            await self.dead.put(raw[:RAW_LIMIT], f"proxy: request body larger than {self.max_body_bytes} bytes")
            return json_error(413, f"request body larger than {self.max_body_bytes} bytes")
        self.calls += 1
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("no messages list")
        except ValueError as exc:  # not ours to judge: forward it, keep a record of why it was not recorded
            await self.dead.put(raw, f"proxy: chat request not recorded: {exc}")
            return await self._forward_unrecorded(request, raw)
        call = await self.book.begin(identity_from(request.headers), body["messages"], str(body.get("model") or ""))
        try:
            return await self._forward_chat(request, body, raw, call)
        except BaseException as exc:
            if not call.settled:  # whatever broke, the call happened: it is an error step, not a lost one
                await self.book.failed(call, f"proxy error: {exc.__class__.__name__}", utcnow())
            raise

    async def _forward_chat(self, request: web.Request, body: dict[str, Any], raw: bytes,
                            call: Call) -> web.StreamResponse:
        stream = body.get("stream") is True
        hide_usage = False
        if stream:
            given = body.get("stream_options")
            options: dict[str, Any] = given if isinstance(given, dict) else {}
            if options.get("include_usage") is not True:
                body["stream_options"] = {**options, "include_usage": True}
                raw, hide_usage = json.dumps(body).encode(), True
        assert self.client is not None
        headers = forwarded_headers(request.headers)
        headers["Content-Type"] = "application/json"
        try:
            upstream = await self.client.post(self._target(request), data=raw, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"upstream unreachable: {exc.__class__.__name__}"
            await self.book.failed(call, reason, utcnow())
            return json_error(502, reason, {SESSION_HEADER: call.session.session_id})
        async with upstream:
            if upstream.status >= 400:
                data = await upstream.read()
                await self.book.failed(call, _error_text(upstream.status, data, request.headers.get("Authorization")),
                                       utcnow())
                return self._respond(upstream, data, call)
            if stream and upstream.content_type == "text/event-stream":
                return await self._relay_stream(request, upstream, call, hide_usage)
            data = await upstream.read()
        try:
            completion = completion_from_body(json.loads(data))
        except (ValueError, MappingError) as exc:
            await self.dead.put(data, f"proxy: unreadable chat response: {exc}")
            await self.book.failed(call, f"unreadable chat response: {exc}", utcnow())
        else:
            await self.book.answered(call, completion, utcnow())
        return self._respond(upstream, data, call)

    def _respond(self, upstream: aiohttp.ClientResponse, data: bytes, call: Call) -> web.Response:
        headers = response_headers(upstream.headers)
        headers[SESSION_HEADER] = call.session.session_id
        return web.Response(status=upstream.status, body=data, headers=headers)

    async def _forward_unrecorded(self, request: web.Request, raw: bytes) -> web.Response:
        assert self.client is not None
        try:
            async with self.client.post(self._target(request), data=raw,
                                        headers=forwarded_headers(request.headers)) as upstream:
                data = await upstream.read()
                return web.Response(status=upstream.status, body=data, headers=response_headers(upstream.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return json_error(502, f"upstream unreachable: {exc.__class__.__name__}")

    async def _relay_stream(self, request: web.Request, upstream: aiohttp.ClientResponse, call: Call,
                            hide_usage: bool) -> web.StreamResponse:
        """Forward server-sent events one by one while folding them into the completion."""
        headers = response_headers(upstream.headers)
        headers[SESSION_HEADER] = call.session.session_id
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(request)
        acc = StreamAccumulator()
        seen = bytearray()
        problem: str | None = None
        client_gone = False
        event: list[bytes] = []
        async for line in upstream.content:
            if len(seen) < RAW_LIMIT:
                seen += line
            event.append(line)
            if line.strip():
                continue
            block, event = b"".join(event), []
            problem, shown = self._fold_event(acc, block, hide_usage, problem)
            if shown and not client_gone:
                try:
                    await response.write(block)
                except (ConnectionError, RuntimeError):
                    client_gone = True  # keep reading: the call still happened and is recorded
        if event and not client_gone:
            await response.write(b"".join(event))
        if problem is None:
            try:
                completion = acc.result()
            except MappingError as exc:
                problem = str(exc)
        if problem is not None:
            await self.dead.put(bytes(seen), f"proxy: unreadable chat stream: {problem}")
            await self.book.failed(call, f"unreadable chat stream: {problem}", utcnow())
        else:
            await self.book.answered(call, completion, utcnow())
        if not client_gone:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        return response

    @staticmethod
    def _fold_event(acc: StreamAccumulator, block: bytes, hide_usage: bool,
                    problem: str | None) -> tuple[str | None, bool]:
        """Fold one SSE event; returns the first problem seen so far and whether the client sees it."""
        data = b"".join(line[5:].strip() + b"\n" for line in block.splitlines() if line.startswith(b"data:")).strip()
        if not data or data == b"[DONE]":
            return problem, True
        try:
            chunk = json.loads(data)
            acc.feed(chunk)
        except (ValueError, MappingError) as exc:
            return problem or f"bad event: {exc}", True
        usage_only = hide_usage and isinstance(chunk, dict) and not chunk.get("choices") and chunk.get("usage")
        return problem, not usage_only
