"""A deterministic OpenAI-compatible chat server on loopback: the stand-in upstream for the proxy's
tests and `art bench proxy` (no model, no network).

It answers by rule, so a test knows every response in advance:
- last message a ``tool`` result -> the answer ``result: <that content>``;
- last user message ``call:NAME:ARGS`` (``|``-separated for parallel calls) -> those tool calls;
- last user message ``fail:CODE`` -> that HTTP error;
- anything else -> the answer ``echo: <text>``.
Usage is counted in words (prompt: every message's words + 1 per message; completion: the answer's
words, or each call's name and arguments), so tests can compute it too (``usage_for``). ``logprobs``
and vLLM's ``return_token_ids`` are honoured; ``stream`` sends one chunk per word.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from typing import Any

from aiohttp import web


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text(m.get("content")).split()) + 1 for m in messages)


def reply_for(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message (and HTTP status) this server answers to ``messages``."""
    last = messages[-1] if messages else {}
    text = _text(last.get("content"))
    if last.get("role") == "tool":
        return {"status": 200, "content": f"result: {text}", "tool_calls": []}
    if text.startswith("fail:"):
        return {"status": int(text.split(":", 1)[1]), "content": f"scripted failure {text}", "tool_calls": []}
    if text.startswith("call:"):
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:10]
        calls = []
        for i, spec in enumerate(text[len("call:"):].split("|")):
            name, _, args = spec.partition(":")
            calls.append({"id": f"call_{digest}_{i}", "type": "function",
                          "function": {"name": name, "arguments": args or "{}"}})
        return {"status": 200, "content": "", "tool_calls": calls}
    return {"status": 200, "content": f"echo: {text}", "tool_calls": []}


def completion_tokens(reply: dict[str, Any]) -> int:
    words = len(reply["content"].split())
    return words + sum(1 + len(c["function"]["arguments"].split()) for c in reply["tool_calls"])


def usage_for(messages: list[dict[str, Any]]) -> dict[str, int]:
    """The usage this server reports for ``messages`` (tests compare the recorded tokens to it)."""
    prompt, done = prompt_tokens(messages), completion_tokens(reply_for(messages))
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


class OpenAIUpstream:
    """``with OpenAIUpstream() as up: up.base_url`` (a thread with its own loop), or ``main`` for a process."""

    def __init__(self, delay_ms: float = 0.0, model: str = "scripted-1") -> None:
        self.delay_s = delay_ms / 1000
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_get("/v1/models", self.models)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.record = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "art"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": {"message": f"invalid JSON body: {exc}", "type": "invalid_request"}},
                                     status=400)
        if self.record:
            self.requests.append({"headers": dict(request.headers), "body": body})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        messages = body.get("messages") or []
        reply = reply_for(messages)
        if reply["status"] != 200:
            return web.json_response({"error": {"message": reply["content"], "type": "scripted"}},
                                     status=reply["status"])
        usage = usage_for(messages)
        words = reply["content"].split(" ") if reply["content"] else []
        logprobs = ([{"token": w, "logprob": -round(0.125 * (i + 1), 3), "bytes": list(w.encode()), "top_logprobs": []}
                     for i, w in enumerate(words)] if body.get("logprobs") else None)
        token_ids = [1000 + i for i in range(len(words))] if body.get("return_token_ids") else None
        rid = f"chatcmpl-{len(self.requests)}-{int(time.time() * 1000)}"
        if body.get("stream"):
            return await self._stream(request, body, rid, reply, words, usage, logprobs, token_ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply["content"] or None}
        if reply["tool_calls"]:
            message["tool_calls"] = reply["tool_calls"]
        choice: dict[str, Any] = {"index": 0, "message": message,
                                  "finish_reason": "tool_calls" if reply["tool_calls"] else "stop",
                                  "logprobs": {"content": logprobs} if logprobs is not None else None}
        if token_ids is not None:
            choice["token_ids"] = token_ids
        return web.json_response({"id": rid, "object": "chat.completion", "created": int(time.time()),
                                  "model": body.get("model") or self.model, "choices": [choice], "usage": usage})

    async def _stream(self, request: web.Request, body: dict[str, Any], rid: str, reply: dict[str, Any],
                      words: list[str], usage: dict[str, int], logprobs: list[dict[str, Any]] | None,
                      token_ids: list[int] | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = body.get("model") or self.model
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def send(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
            chunk = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                     "choices": choices, **({"usage": None} if with_usage else {}), **(extra or {})}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i, word in enumerate(words):
            choice: dict[str, Any] = {"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                      "finish_reason": None}
            if logprobs is not None:
                choice["logprobs"] = {"content": [logprobs[i]]}
            if token_ids is not None:
                choice["token_ids"] = [token_ids[i]]
            await send([choice])
        for i, call in enumerate(reply["tool_calls"]):
            args = call["function"]["arguments"]
            half = len(args) // 2
            await send([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                                "function": {"name": call["function"]["name"],
                                                                             "arguments": args[:half]}}]},
                         "finish_reason": None}])
            await send([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]},
                         "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "finish_reason": "tool_calls" if reply["tool_calls"] else "stop"}])
        if with_usage:
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- running it -------------------------------------------------------------------------

    async def start_async(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    def __enter__(self) -> OpenAIUpstream:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="openai-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._runner is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description="deterministic OpenAI-compatible chat server (bench upstream)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    upstream = OpenAIUpstream(delay_ms=args.delay_ms)
    upstream.record = False
    web.run_app(upstream.app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
