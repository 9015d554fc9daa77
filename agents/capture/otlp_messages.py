"""Messages and tool facts as the three span dialects carry them, read into OpenAI-style dicts.

OpenTelemetry GenAI semantic conventions (``gen_ai.input.messages`` / ``gen_ai.output.messages``
as JSON parts, or the older ``gen_ai.*.message`` / ``gen_ai.choice`` events), OpenLLMetry
(``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``) and OpenInference
(``llm.input_messages.N.message.*``) say the same things in different shapes; once read, the
proxy's rules (``chat.new_turn``, ``steps.call_steps``) apply unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from agents.capture.otlp_decode import Span

Message = dict[str, Any]

INPUT_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": as_text(call_id), "function": {"name": as_text(name), "arguments": as_text(arguments)}}


def _semconv(value: Any) -> list[Message] | None:
    """``gen_ai.*.messages``: a JSON list of {role, parts[{type, …}], finish_reason}."""
    doc = _json(value)
    if not isinstance(doc, list):
        return None
    out: list[Message] = []
    for item in doc:
        if not isinstance(item, dict):
            continue
        if "parts" not in item:  # an OpenAI-shaped message
            out.append(item)
            continue
        texts, calls = [], []
        for part in item.get("parts") or []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(as_text(part.get("content")))
            elif kind == "tool_call":
                calls.append(_call(part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                out.append({"role": "tool", "tool_call_id": as_text(part.get("id")),
                            "content": as_text(part.get("response", part.get("result")))})
        role = as_text(item.get("role"))
        if texts or calls or role not in ("tool", ""):
            message: Message = {"role": role, "content": "\n".join(texts)}
            if calls:
                message["tool_calls"] = calls
            if item.get("finish_reason"):
                message["finish_reason"] = as_text(item["finish_reason"])
            out.append(message)
    return out


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.0.a``, ``prefix.0.b``, ``prefix.1.a`` -> [{a, b}, {a}] in index order."""
    groups: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition(".")
            if index.isdigit() and rest:
                groups.setdefault(int(index), {})[rest] = value
    return [groups[i] for i in sorted(groups)]


def _flat(attrs: dict[str, Any], prefix: str, inner: str, call_prefix: str,
          call_fields: tuple[str, str, str]) -> list[Message]:
    out: list[Message] = []
    for group in _indexed(attrs, prefix):
        message: Message = {"role": as_text(group.get(f"{inner}role") or "user"),
                            "content": as_text(group.get(f"{inner}content"))}
        calls = [_call(c.get(call_fields[0]), c.get(call_fields[1]), c.get(call_fields[2]))
                 for c in _indexed(group, f"{inner}{call_prefix}")]
        if calls:
            message["tool_calls"] = calls
        if group.get(f"{inner}tool_call_id"):
            message["tool_call_id"] = as_text(group[f"{inner}tool_call_id"])
        if group.get("finish_reason"):
            message["finish_reason"] = as_text(group["finish_reason"])
        out.append(message)
    return out


_OPENLLMETRY_CALL = ("id", "name", "arguments")
_OPENINFERENCE_CALL = ("tool_call.id", "tool_call.function.name", "tool_call.function.arguments")


def input_messages(span: Span) -> list[Message]:
    attrs = span.attributes
    found = _semconv(attrs.get("gen_ai.input.messages"))
    if found is not None:
        return found
    events = [{"role": INPUT_EVENTS[e.name], "content": as_text(e.attributes.get("content")),
               **({"tool_call_id": as_text(e.attributes["id"])} if "id" in e.attributes else {})}
              for e in span.events if e.name in INPUT_EVENTS]
    return (events or _flat(attrs, "gen_ai.prompt.", "", "tool_calls.", _OPENLLMETRY_CALL)
            or _flat(attrs, "llm.input_messages.", "message.", "tool_calls.", _OPENINFERENCE_CALL))


def output_messages(span: Span) -> list[Message]:
    attrs = span.attributes
    found = _semconv(attrs.get("gen_ai.output.messages"))
    if found is not None:
        return found
    choices = []
    for event in span.events:
        if event.name == "gen_ai.choice":
            message = _json(event.attributes.get("message"))
            message = message if isinstance(message, dict) else {
                "content": event.attributes.get("content"), "tool_calls": _json(event.attributes.get("tool_calls"))}
            choices.append({"role": "assistant", **message,
                            "finish_reason": as_text(event.attributes.get("finish_reason"))})
    return (choices or _flat(attrs, "gen_ai.completion.", "", "tool_calls.", _OPENLLMETRY_CALL)
            or _flat(attrs, "llm.output_messages.", "message.", "tool_calls.", _OPENINFERENCE_CALL))


def tool_facts(span: Span) -> tuple[str, str, str, str | None]:
    """(name, call id, arguments, result) of a tool span; result None when the span does not say."""
    name = as_text(span.attr("gen_ai.tool.name", "tool.name", "traceloop.entity.name"))
    call_id = as_text(span.attr("gen_ai.tool.call.id", "tool_call.id"))
    arguments = as_text(span.attr("gen_ai.tool.call.arguments", "input.value",
                                  "traceloop.entity.input"))
    result = span.attr("gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
    return name, call_id, arguments, None if result is None else as_text(result)
