"""The compact prompt style: one LLM call per step, one action line per reply, for small models.

Why: a 135M-parameter model cannot hold the think / decide-as-JSON / reflect protocol of the default
style together (it writes the calculation itself, or prose around broken JSON), and three calls per
step triple the cost of every run. Here the chat *is* the trajectory: the system message states the
format, tools and one worked example; each user turn is the observation the runner records; each
assistant turn is the canonical action line (``schemas.transcript``), so the trainer rebuilds the
very chat the model saw. Parsing is lenient about role prefixes, case and surrounding prose, and
strict about the result: one action or ``DecisionError``.
"""

from __future__ import annotations

import re

from agents.llm import ChatMessage
from agents.prompts import Decision, DecisionError, clip

FORMAT_REMINDER = "Reply with one line: TOOL <tool name>: <input>, or ANSWER: <answer>."

_ACTION = re.compile(r"^[\W_]*(?:(?:you|assistant|agent|action)\s*:\s*)?(use_tool|tool|answer|final answer)\b\s*(.*)$",
                     re.IGNORECASE)
_TOOL_CALL = (re.compile(r"^\s*([A-Za-z][\w-]*)\s*:\s*(.*?)\s*$"), re.compile(r"^\s*([A-Za-z][\w-]*)\((.*)\)\s*$"))


def system_prompt(tools_text: str) -> str:
    """The system message: format, tools, one worked example (the same for every mission with these tools)."""
    return ("You solve a task by calling tools. Reply with exactly one line, either\n"
            "TOOL <tool name>: <tool input>\n"
            "or, when you know the final answer,\n"
            "ANSWER: <the answer only>\n\n"
            f"Tools:\n{tools_text}\n\n"
            "Example:\nTask: What is 6 * 7 + 1?\nYou: TOOL calculator: 6 * 7 + 1\nResult: 43\nYou: ANSWER: 43")


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
            value = rest
            if not value:
                raise DecisionError("ANSWER line has no answer")
            return Decision(action="answer", input=value, thought=thought)
        call = next((m for m in (p.match(rest) for p in _TOOL_CALL) if m), None)
        if call is None or not call.group(2).strip():
            raise DecisionError(f"TOOL line names no tool and input: {clip(line.strip(), 200)!r}")
        return Decision(action="use_tool", tool=call.group(1).lower(), input=call.group(2).strip(), thought=thought)
    raise DecisionError(f"no TOOL or ANSWER line in the reply: {clip(text.strip(), 200)!r}")


def chat(system: str, turns: list[tuple[str, str]], observation: str) -> list[ChatMessage]:
    """system, then (user: observation, assistant: turn) per earlier step, then the current observation."""
    out = [ChatMessage(role="system", content=system)]
    for seen, said in turns:
        out += [ChatMessage(role="user", content=seen), ChatMessage(role="assistant", content=said)]
    out.append(ChatMessage(role="user", content=observation))
    return out
