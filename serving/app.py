"""The HTTP face of `art serve` (FastAPI): chat completions, streaming, models, admin reload.

Each choice of a request becomes one engine request; the engine thread hands its events to the
event loop (``call_soon_threadsafe``), so a slow client never slows the batch. A client that goes
away cancels its rows at the next step. Errors use OpenAI's envelope, so its clients raise typed
exceptions with our one-line message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from serving.catalog import RegistryWatch, Target, UnknownModel
from serving.engine import Engine, EngineError, Event, GenRequest, TokenEvent
from serving.protocol import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    TokenLogprob,
    TopLogprob,
    Usage,
    completion_id,
    error_body,
)
from serving.sampling import SamplingParams


class ServeError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class _Job:
    """The engine requests of one HTTP request and the queue their events arrive on."""

    requests: list[GenRequest]
    events: asyncio.Queue[tuple[int, Event]]

    def cancel(self) -> None:
        for r in self.requests:
            r.cancelled.set()


class Completions:
    """Turns a validated ``ChatRequest`` into engine requests and their events into OpenAI bodies."""

    def __init__(self, engine: Engine, watch: RegistryWatch, default_max_tokens: int) -> None:
        self.engine, self.watch, self.default_max_tokens = engine, watch, default_max_tokens

    def prepare(self, req: ChatRequest) -> tuple[Target, list[int], SamplingParams]:
        try:
            target = self.watch.catalog.resolve(req.model)
        except UnknownModel as exc:
            raise ServeError(404, str(exc), "model_not_found") from None
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        try:
            prompt = self.engine.encode_chat(messages, continue_final=req.continue_final_message)
        except Exception as exc:  # the chat template refused the conversation
            raise ServeError(400, f"cannot apply the chat template: {exc}") from None
        room = self.engine.context - len(prompt)
        if room < 1:
            raise ServeError(400, f"the prompt has {len(prompt)} tokens; this model's context is {self.engine.context}",
                             "context_length_exceeded")
        limit = min(req.token_limit() or self.default_max_tokens, room)
        params = SamplingParams(max_tokens=limit, temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                                stops=tuple(req.stops()), logprobs=req.logprobs, top_logprobs=req.top_logprobs or 0,
                                ignore_eos=req.ignore_eos)
        return target, prompt, params

    def submit(self, target: Target, prompt: list[int], params: SamplingParams, n: int) -> _Job:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        requests = []
        for index in range(n):
            seeded = params if params.seed is None else dataclasses.replace(params, seed=params.seed + index)

            def emit(event: Event, index: int = index) -> None:
                loop.call_soon_threadsafe(events.put_nowait, (index, event))

            requests.append(GenRequest(prompt, seeded, emit, target.adapter))
        job = _Job(requests, events)
        try:
            for r in requests:
                self.engine.submit(r)
        except EngineError as exc:
            job.cancel()
            raise ServeError(503, str(exc)) from None
        return job

    def logprob_entry(self, event: TokenEvent, req: ChatRequest) -> TokenLogprob:
        def name(token: int) -> tuple[str, list[int]]:
            text = self.engine.token_text(token)
            return (f"token_id:{token}" if req.return_tokens_as_token_ids else text), list(text.encode())

        token, raw = name(event.token)
        tops = []
        for t, lp in event.top:
            tname, tbytes = name(t)
            tops.append(TopLogprob(token=tname, logprob=lp, bytes=tbytes))
        return TokenLogprob(token=token, logprob=event.logprob, bytes=raw, top_logprobs=tops)

    async def complete(self, req: ChatRequest, target: Target, prompt: list[int], job: _Job) -> ChatResponse:
        n = len(job.requests)
        texts = [""] * n
        entries: list[list[TokenLogprob]] = [[] for _ in range(n)]
        counts = [0] * n
        reasons: list[str | None] = [None] * n
        while any(r is None for r in reasons):
            index, event = await job.events.get()
            if isinstance(event, TokenEvent):
                texts[index] += event.text
                counts[index] += 1
                if req.logprobs:
                    entries[index].append(self.logprob_entry(event, req))
            else:
                if event.error:
                    job.cancel()
                    raise ServeError(500, event.error, "engine_error")
                reasons[index] = event.finish_reason
        choices = [Choice(index=i, message=AssistantMessage(content=texts[i]), finish_reason=reasons[i],  # type: ignore[arg-type]
                          logprobs=ChoiceLogprobs(content=entries[i]) if req.logprobs else None) for i in range(n)]
        usage = Usage(prompt_tokens=len(prompt), completion_tokens=sum(counts), total_tokens=len(prompt) + sum(counts))
        return ChatResponse(model=target.model_id, choices=choices, usage=usage)

    async def stream(self, req: ChatRequest, target: Target, prompt: list[int], job: _Job) -> AsyncIterator[str]:
        ident, created, n = completion_id(), int(time.time()), len(job.requests)

        def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
            body = ChatChunk(id=ident, created=created, model=target.model_id, choices=choices, usage=usage)
            return f"data: {body.model_dump_json(exclude_none=True)}\n\n"

        open_ = n
        completion_tokens = 0
        try:
            for i in range(n):
                yield chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))])
            while open_:
                index, event = await job.events.get()
                if isinstance(event, TokenEvent):
                    completion_tokens += 1
                    if event.text or req.logprobs:
                        logprobs = ChoiceLogprobs(content=[self.logprob_entry(event, req)]) if req.logprobs else None
                        yield chunk([ChunkChoice(index=index, delta=Delta(content=event.text), logprobs=logprobs)])
                    continue
                open_ -= 1
                if event.error:
                    yield f"data: {json.dumps(error_body(event.error, 'server_error', 'engine_error'))}\n\n"
                    job.cancel()
                    break
                yield chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=event.finish_reason)])  # type: ignore[arg-type]
            if req.stream_options is not None and req.stream_options.include_usage:
                yield chunk([], Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens,
                                      total_tokens=len(prompt) + completion_tokens))
            yield "data: [DONE]\n\n"
        finally:
            job.cancel()  # no-op when finished; stops the rows of a client that went away


def create_app(engine: Engine, watch: RegistryWatch, *, default_max_tokens: int = 512) -> FastAPI:
    app = FastAPI(title="art serve", docs_url=None, redoc_url=None)
    completions = Completions(engine, watch, default_max_tokens)
    started = int(time.time())

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return JSONResponse(error_body(exc.message, kind, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return JSONResponse(error_body(f"{where}: {message}" if where else message), status_code=400)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        catalog = watch.catalog
        return {"status": "ok", "base": str(catalog.base_dir), "base_id": catalog.base_id,
                "champions": {s: t.model_id for s, t in catalog.champion_targets().items()},
                "loaded_adapters": engine.loaded_adapters(), "registry_polls": watch.polls,
                "registry_error": watch.last_error}

    @app.get("/v1/models")
    async def models() -> ModelList:
        catalog = watch.catalog
        cards = []
        for name in catalog.names():
            target = catalog.resolve(name)
            record = catalog.models.get(target.model_id)
            created = int(record.created_at.timestamp()) if record else started
            cards.append(ModelCard(id=name, created=created, root=target.model_id,
                                   parent=None if target.adapter is None else catalog.base_id))
        return ModelList(data=cards)

    @app.post("/admin/reload")
    async def reload() -> dict[str, Any]:
        catalog = await asyncio.to_thread(watch.refresh)
        return {"champions": {s: t.model_id for s, t in catalog.champion_targets().items()},
                "models": catalog.names(), "registry_error": watch.last_error}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: ChatRequest) -> ChatResponse | StreamingResponse:
        target, prompt, params = completions.prepare(req)
        job = completions.submit(target, prompt, params, req.n)
        if req.stream:
            return StreamingResponse(completions.stream(req, target, prompt, job), media_type="text/event-stream")
        try:
            return await completions.complete(req, target, prompt, job)
        finally:
            job.cancel()

    return app
