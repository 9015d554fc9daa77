"""The one client for OpenAI-compatible chat endpoints (vLLM, Ollama, llama.cpp, OpenAI, `art serve`).

Agents await ``chat``; the LLM judges (``judges.llm``) use the same client, from async code or, via
``chat_sync``, from sync code. Only ``POST {base_url}/chat/completions`` is used, so any server speaking
that dialect works. The reply is validated with pydantic; token counts come from the ``usage`` field
(0 when a server omits it). Transport errors and 5xx answers are retried ``retries`` times, then
raised as ``LLMError`` naming the URL and the cause.

``chat(..., logprobs=True)`` also asks for the completion's token ids and logprobs in vLLM's
dialect (``logprobs`` + ``return_tokens_as_token_ids``: tokens come back as ``token_id:<id>``),
which `art serve` and vLLM both speak. An endpoint that refuses the extension (HTTP 400 naming it)
is asked again without it, once per client: traces are a bonus, never a reason to fail a run.

A chat whose last message is the assistant's is a reply prefix: it is sent with vLLM's
``continue_final_message`` (which `art serve` speaks too), and the reply's text is what follows it.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.recording import AgentError
from config.settings import ArtConfig


class LLMError(AgentError):
    """The endpoint could not be reached, refused the request, or answered nonsense."""


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatReply(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    model: str = ""
    token_ids: list[int] | None = None
    """The completion's token ids, when asked for and the endpoint returned them."""
    logprobs: list[float] | None = None
    """The logprob of each of ``token_ids`` under the serving policy."""


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None


class _Message(BaseModel):
    content: str | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float


class Logprobs(BaseModel):
    content: list[TokenLogprob] | None = None


class _Choice(BaseModel):
    message: _Message
    logprobs: Logprobs | None = None


class _Completion(BaseModel):
    model: str = ""
    choices: list[_Choice]
    usage: _Usage | None = None


class _Refused(Exception):
    """The endpoint refused the token-id extension (an HTTP 400 naming it)."""


TOKEN_ID_PREFIX = "token_id:"


def vllm_token_trace(logprobs: Logprobs | None) -> tuple[list[int] | None, list[float] | None]:
    """Token ids and logprobs from vLLM-style ``token_id:<id>`` tokens; (None, None) when absent."""
    if logprobs is None or logprobs.content is None:
        return None, None
    try:
        ids = [int(t.token.removeprefix(TOKEN_ID_PREFIX)) for t in logprobs.content
               if t.token.startswith(TOKEN_ID_PREFIX)]
    except ValueError:
        return None, None
    if len(ids) != len(logprobs.content):
        return None, None
    return ids, [t.logprob for t in logprobs.content]


class ChatClient(Protocol):
    """What the runner needs from a language model."""

    async def chat(self, messages: list[ChatMessage], *, temperature: float = 0.7,
                   max_tokens: int | None = None, model: str | None = None, logprobs: bool = False,
                   stop: list[str] | None = None, top_p: float = 1.0) -> ChatReply: ...


class OpenAIChatClient:
    """``chat`` against one endpoint and default model; use as ``async with`` to close the pool."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", timeout_s: float = 60.0,
                 retries: int = 2) -> None:
        if not base_url:
            raise LLMError("no LLM endpoint configured: set [art.models] llm_base_url (or ART_MODELS_LLM_BASE_URL)")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.retries = retries
        self.timeout_s = timeout_s
        self.traces_refused = False  # the endpoint refused the token-id extension once: stop asking
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._sync: httpx.Client | None = None

    @classmethod
    def from_config(cls, cfg: ArtConfig, model: str = "") -> OpenAIChatClient:
        m = cfg.models
        return cls(m.llm_base_url, model or m.llm_model, api_key=m.llm_api_key, timeout_s=m.llm_timeout_s)

    async def chat(self, messages: list[ChatMessage], *, temperature: float = 0.7,
                   max_tokens: int | None = None, model: str | None = None, logprobs: bool = False,
                   stop: list[str] | None = None, top_p: float = 1.0) -> ChatReply:
        body = self._body(messages, temperature, max_tokens, model, stop, top_p)
        if logprobs and not self.traces_refused:
            try:
                return await self._post({**body, "logprobs": True, "return_tokens_as_token_ids": True})
            except _Refused:
                self.traces_refused = True
        return await self._post(body)

    def chat_sync(self, messages: list[ChatMessage], *, temperature: float = 0.7, max_tokens: int | None = None,
                  model: str | None = None, stop: list[str] | None = None) -> ChatReply:
        """``chat`` for synchronous callers (a judge outside an event loop); same retries and errors."""
        body = self._body(messages, temperature, max_tokens, model, stop)
        if self._sync is None:
            self._sync = httpx.Client(timeout=self.timeout_s, headers=self._headers, trust_env=False)
        for attempt in range(self.retries + 1):
            try:
                reply = self._settle(body, attempt, self._sync.post(self.url, json=body))
            except httpx.HTTPError as exc:
                reply = self._settle(body, attempt, exc)
            if reply is not None:
                return reply
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _body(self, messages: list[ChatMessage], temperature: float, max_tokens: int | None, model: str | None,
              stop: list[str] | None, top_p: float = 1.0) -> dict[str, object]:
        body: dict[str, object] = {"model": model or self.model, "temperature": temperature,
                                   "messages": [m.model_dump() for m in messages]}
        if top_p < 1.0:
            body["top_p"] = top_p
        if messages and messages[-1].role == "assistant":  # a reply prefix: continue it (vLLM's dialect)
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if stop:
            body["stop"] = stop
        return body

    async def _post(self, body: dict[str, object]) -> ChatReply:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:  # a pool belongs to the loop that made it
            self._http = httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers, trust_env=False)
            self._http_loop = loop
        for attempt in range(self.retries + 1):
            try:
                reply = self._settle(body, attempt, await self._http.post(self.url, json=body))
            except httpx.HTTPError as exc:
                reply = self._settle(body, attempt, exc)
            if reply is not None:
                return reply
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _settle(self, body: dict[str, object], attempt: int,
                outcome: httpx.Response | httpx.HTTPError) -> ChatReply | None:
        """One attempt's result: the reply, None to try again, or the error (one rule for both transports)."""
        last = attempt == self.retries
        if isinstance(outcome, httpx.HTTPError):
            if not last:
                return None
            if isinstance(outcome, httpx.TimeoutException):
                raise LLMError(f"LLM endpoint {self.url} timed out after {self.timeout_s}s "
                               f"({outcome.__class__.__name__})") from None
            raise LLMError(f"LLM endpoint {self.url} unreachable: {outcome.__class__.__name__}: {outcome}") from None
        if outcome.status_code >= 500 and not last:
            return None
        if outcome.status_code == 400 and "return_tokens_as_token_ids" in body and \
                any(k in outcome.text for k in ("return_tokens_as_token_ids", "logprobs")):
            raise _Refused(outcome.text[:300])
        return self._parse(self.url, outcome)

    @staticmethod
    def _parse(url: str, response: httpx.Response) -> ChatReply:
        if response.status_code != 200:
            raise LLMError(f"LLM endpoint {url} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            completion = _Completion.model_validate_json(response.content)
        except ValidationError as exc:
            raise LLMError(f"LLM endpoint {url} sent an unexpected body: {exc.errors()[0]['msg']}") from None
        if not completion.choices:
            raise LLMError(f"LLM endpoint {url} returned no choices")
        usage = completion.usage or _Usage()
        total = usage.total_tokens if usage.total_tokens is not None else usage.prompt_tokens + usage.completion_tokens
        choice = completion.choices[0]
        ids, lps = vllm_token_trace(choice.logprobs)
        return ChatReply(text=choice.message.content or "", prompt_tokens=usage.prompt_tokens,
                         completion_tokens=usage.completion_tokens, total_tokens=total, model=completion.model,
                         token_ids=ids, logprobs=lps)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.close()

    def close(self) -> None:
        """Close the synchronous pool (``chat_sync``); ``aclose`` closes both."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
