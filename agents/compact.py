"""The compact prompt style: one LLM call per step, one action line per reply, for small models.

Why: a 135M-parameter model cannot hold the think / decide-as-JSON / reflect protocol of the default
style together (it writes the calculation itself, or prose around broken JSON), and three calls per
step triple the cost of every run. Here the chat *is* the trajectory: a short system message gives
the two reply forms and each tool as a ready-made line (``TOOL calculator: (12 + 3) * 4``), one
worked exchange follows as real chat turns (small models copy turns far better than prose), then
each user turn is the observation the runner records and each assistant turn the canonical action
line (``schemas.transcript``). The whole prefix is recorded with the session, so the trainer
rebuilds the very chat the model saw. Replies stop at the first line break: the one line is the
decision, and a model that runs on into imagined results costs no tokens.
"""

from __future__ import annotations

import json
import re

from agents.llm import ChatMessage
from agents.prompts import Decision, DecisionError, clip
from agents.tools.base import REGISTRY, Toolbox

FORMAT_REMINDER = "Reply with one line: TOOL <tool name>: <input>, or ANSWER: <answer>."
STOP = ["\n"]
EXAMPLE = [("user", "Task: What is 6 * 7 + 1?"), ("assistant", "TOOL calculator: 6 * 7 + 1"),
           ("user", "Result: 43"), ("assistant", "ANSWER: 43")]
"""The worked exchange (shown when the mission has a calculator); context only, never trained on."""

_ACTION = re.compile(r"^[\W_]*(?:(?:you|assistant|agent|action)\s*:\s*)?(use_tool|tool|answer|final answer)\b\s*(.*)$",
                     re.IGNORECASE)
_TOOL_CALL = (re.compile(r"^\s*([A-Za-z][\w-]*)\s*:\s*(.*?)\s*$"), re.compile(r"^\s*([A-Za-z][\w-]*)\((.*)\)\s*$"))


def _tool_line(name: str) -> str:
    kind = REGISTRY.get(name)
    if kind is None:
        return f"TOOL {name}: <input>"
    what = kind.description.split(":")[0].strip()
    return f"TOOL {name}: {kind.example or '<input>'}   ({what})"


def system_prompt(tools: Toolbox) -> str:
    """The system message: the two reply forms, then every tool as a line ready to copy."""
    lines = "\n".join(_tool_line(n) for n in tools.names()) or "(no tools)"
    return ("You solve a task by calling tools, one call per reply. Reply with exactly one line, either\n"
            "TOOL <tool name>: <tool input>\n"
            "or, when you know the final answer,\n"
            "ANSWER: <the answer only>\n\n"
            f"Tools:\n{lines}")


def prompt_prefix(tools: Toolbox) -> list[ChatMessage]:
    """What precedes the task: the system message and, when the calculator is there, the worked exchange."""
    example = EXAMPLE if "calculator" in tools else []
    return [ChatMessage(role="system", content=system_prompt(tools)),
            *(ChatMessage(role=role, content=text) for role, text in example)]  # type: ignore[arg-type]


def encode_prefix(prefix: list[ChatMessage]) -> str:
    """The prefix as recorded in ``agent_config`` (JSON list of {role, content})."""
    return json.dumps([m.model_dump() for m in prefix], ensure_ascii=False)


def first_observation(objective: str) -> str:
    return f"Task: {objective}"


def tool_observation(result: str) -> str:
    return f"Result: {clip(result, 1500)}"


def error_observation(error: str) -> str:
    return f"Error: {clip(error, 500)}"


def malformed_observation(reason: str) -> str:
    return f"Error: {reason}. {FORMAT_REMINDER}"


def parse_reply(text: str) -> Decision:
    """The first action line of ``text``; the lines before it are the thought."""
    lines = text.strip().splitlines()
    for i, line in enumerate(lines):
        match = _ACTION.match(line.strip())
        if not match:
            continue
        kind, rest = match.group(1).lower(), match.group(2).strip().lstrip(":*_ ").rstrip("*_ ")
        thought = "\n".join(lines[:i]).strip()
        if kind in ("answer", "final answer"):
            if not rest:
                raise DecisionError("ANSWER line has no answer")
            return Decision(action="answer", input=rest, thought=thought)
        call = next((m for m in (p.match(rest) for p in _TOOL_CALL) if m), None)
        if call is None or not call.group(2).strip():
            raise DecisionError(f"TOOL line names no tool and input: {clip(line.strip(), 200)!r}")
        return Decision(action="use_tool", tool=call.group(1).lower(), input=call.group(2).strip(), thought=thought)
    raise DecisionError(f"no TOOL or ANSWER line in the reply: {clip(text.strip(), 200)!r}")


def chat(prefix: list[ChatMessage], turns: list[tuple[str, str]], observation: str) -> list[ChatMessage]:
    """The prefix, then (user: observation, assistant: turn) per earlier step, then the current observation."""
    out = list(prefix)
    for seen, said in turns:
        out += [ChatMessage(role="user", content=seen), ChatMessage(role="assistant", content=said)]
    out.append(ChatMessage(role="user", content=observation))
    return out
