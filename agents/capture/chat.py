"""The OpenAI chat wire format, read for capture: bodies, streams, and conversation identity.

Pure functions over parsed JSON, so every rule is tested without HTTP. A conversation is
recognised without any header by its prefix: each request repeats the history, so the history a
session has produced so far (its messages plus the answer it got) is a key the next request of the
same conversation starts with. Messages are canonicalised first (role, text, tool calls), because
SDKs echo an assistant message back with fields added, dropped or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.capture.steps import Completion, ToolCall, Usage
from agents.llm import Logprobs, vllm_token_trace  # vLLM's token_id:<id> convention, read in one place


class MappingError(ValueError):
    """An input that cannot be mapped; the message becomes a dead letter's reason."""


def message_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                parts.append(json.dumps(part, sort_keys=True, default=str))
        return "\n".join(parts)
    return json.dumps(content, sort_keys=True, default=str)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def usage_from(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    prompt, completion = _int(data.get("prompt_tokens")), _int(data.get("completion_tokens"))
    total = _int(data.get("total_tokens")) or prompt + completion
    return Usage(prompt, completion, total, _float(data.get("cost")))


def _tool_call(data: Any) -> ToolCall:
    if not isinstance(data, dict) or not isinstance(data.get("function"), dict):
        raise MappingError(f"tool call without a function: {str(data)[:200]}")
    fn = data["function"]
    arguments = fn.get("arguments")
    return ToolCall(id=str(data.get("id") or ""), name=str(fn.get("name") or ""),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True))


def _logprob_items(data: Any) -> list[dict[str, Any]]:
    content = data.get("content") if isinstance(data, dict) else None
    return [item for item in content if isinstance(item, dict)] if isinstance(content, list) else []


def _token_ids(data: Any) -> list[int] | None:
    if isinstance(data, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in data):
        return list(data)
    return None


def completion_trace(items: list[dict[str, Any]], token_ids: list[int] | None) -> tuple[tuple[int, ...] | None,
                                                                                   tuple[float, ...] | None]:
    """(token ids, their logprobs) of a completion when the upstream returned ids: as vLLM's
    ``return_tokens_as_token_ids`` tokens (``token_id:<id>``, read by ``agents.llm``'s rule) or as its
    ``token_ids`` field. Logprobs without ids cannot be aligned to tokens, so they are not kept."""
    try:
        ids, logprobs = vllm_token_trace(Logprobs.model_validate({"content": items})) if items else (None, None)
    except ValueError:
        ids, logprobs = None, None
    if ids is not None and logprobs is not None:
        return tuple(ids), tuple(logprobs)
    if token_ids is None:
        return None, None
    values = [_float(item.get("logprob")) for item in items]
    aligned = len(values) == len(token_ids) and all(v is not None for v in values)
    return tuple(token_ids), tuple(v for v in values if v is not None) if aligned else None


def completion_from_body(body: Any) -> Completion:
    """A non-streamed ``chat.completion`` body; the first choice is the agent's."""
    if not isinstance(body, dict):
        raise MappingError("response is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MappingError("response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise MappingError("response choice has no message")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise MappingError("tool_calls is not a list")
    ids, logprobs = completion_trace(_logprob_items(choice.get("logprobs")), _token_ids(choice.get("token_ids")))
    return Completion(model=str(body.get("model") or ""), content=message_text(message.get("content")),
                      tool_calls=tuple(_tool_call(c) for c in calls),
                      finish_reason=str(choice.get("finish_reason") or ""),
                      usage=usage_from(body.get("usage")), response_id=str(body.get("id") or ""),
                      logprobs=logprobs, token_ids=ids)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAccumulator:
    """Folds ``chat.completion.chunk`` objects into the completion they spell out."""

    model: str = ""
    response_id: str = ""
    content: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    logprob_items: list[dict[str, Any]] = field(default_factory=list)
    token_ids: list[int] | None = None
    chunks: int = 0

    def feed(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise MappingError("stream chunk is not a JSON object")
        self.chunks += 1
        self.model = self.model or str(chunk.get("model") or "")
        self.response_id = self.response_id or str(chunk.get("id") or "")
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            self._feed_choice(choice)

    def _feed_choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise MappingError("stream delta is not an object")
        if delta.get("content"):
            self.content.append(message_text(delta["content"]))
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                raise MappingError("stream tool call is not an object")
            part = self.calls.setdefault(_int(call.get("index")), _PartialCall())
            part.id = part.id or str(call.get("id") or "")
            fn = call.get("function") or {}
            part.name = part.name or str(fn.get("name") or "")
            if isinstance(fn.get("arguments"), str):
                part.arguments.append(fn["arguments"])
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        self.logprob_items.extend(_logprob_items(choice.get("logprobs")))
        ids = _token_ids(choice.get("token_ids"))
        if ids is not None:
            self.token_ids = (self.token_ids or []) + ids

    def result(self) -> Completion:
        if not self.chunks:
            raise MappingError("stream ended without a chunk")
        calls = tuple(ToolCall(c.id, c.name, "".join(c.arguments)) for _, c in sorted(self.calls.items()))
        ids, logprobs = completion_trace(self.logprob_items, self.token_ids)
        return Completion(model=self.model, content="".join(self.content), tool_calls=calls,
                          finish_reason=self.finish_reason, usage=self.usage, response_id=self.response_id,
                          logprobs=logprobs, token_ids=ids)


# --- conversation identity ------------------------------------------------------------------


def _canonical_arguments(arguments: str) -> str:
    """Frameworks parse tool arguments and dump them again (LangChain: ``{"a":1}`` -> ``{"a": 1}``)."""
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments


def canonical(message: Any) -> bytes:
    """The parts of a message that identify it, whatever an SDK adds or drops when echoing it."""
    if not isinstance(message, dict):
        return json.dumps(["?", str(message)]).encode()
    calls = []
    for call in message.get("tool_calls") or []:
        try:
            tc = _tool_call(call)
        except MappingError:
            continue
        calls.append([tc.id, tc.name, _canonical_arguments(tc.arguments)])
    return json.dumps([str(message.get("role") or ""), message_text(message.get("content")), calls,
                       str(message.get("tool_call_id") or "")]).encode()


def _roll(key: str, message: Any) -> str:
    return hashlib.sha256(key.encode() + canonical(message)).hexdigest()


def prefix_keys(messages: Sequence[Any]) -> list[str]:
    """``keys[k]`` identifies ``messages[:k]`` (``keys[0]`` is the empty conversation)."""
    keys = [""]
    for message in messages:
        keys.append(_roll(keys[-1], message))
    return keys


def extend_key(key: str, completion: Completion) -> str:
    """The key of a conversation after the assistant's answer, as the client will echo it back."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.tool_calls:
        message["tool_calls"] = [{"id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in completion.tool_calls]
    return _roll(key, message)


@dataclass(frozen=True)
class Turn:
    """What a request adds to its conversation: tool results for the pending steps, what the model is
    shown besides (the observation of the step this call makes), the system prompt and first user text."""

    tool_results: dict[str, str]
    observation: str
    system_prompt: str
    first_user: str


def new_turn(messages: Sequence[Any]) -> Turn:
    """Read the messages a request adds since the conversation's last answer."""
    results: dict[str, str] = {}
    seen: list[str] = []
    system: list[str] = []
    first_user = ""
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "")
        text = message_text(message.get("content"))
        if role == "tool":
            results[str(message.get("tool_call_id") or "")] = text
            seen.append(f"tool result: {text}")
        elif role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            first_user = first_user or text
            seen.append(text)
        elif role != "assistant":
            seen.append(f"{role}: {text}")
    return Turn(results, "\n".join(seen), "\n".join(system), first_user)
