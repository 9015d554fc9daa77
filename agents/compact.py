"""The compact prompt style: one LLM call per step, one action line per reply, for small models.

Why: a 135M-parameter model cannot hold the think / decide-as-JSON / reflect protocol of the default
style together (it writes the calculation itself, or prose around broken JSON), and three calls per
step triple the cost of every run. Here the chat *is* the trajectory: a short system message gives
the reply form and each tool as a line to fill in (``file_read: <file path>``; the tool name leads,
so it cannot be left out — "TOOL: 3 * 4" was the base model's commonest mistake — and placeholders,
not sample values, because it copies sample values verbatim), one worked exchange that fits the
tools follows as real chat turns (small models copy turns far better than prose), then
each user turn is the observation the runner records and each assistant turn the canonical action
line (``schemas.transcript``). The whole prefix is recorded with the session, so the trainer
rebuilds the very chat the model saw. Replies stop at the first line break: the one line is the
decision, and a model that runs on into imagined results costs no tokens.

Exploration (``AgentConfig.explore``, training runs only): with that chance a step's reply is made
to start with a tool the run has not called yet and the model writes the rest (``explore_head``).
"""

from __future__ import annotations

import json
import random
import re

from agents.llm import ChatMessage
from agents.prompts import Decision, DecisionError, clip
from agents.tools.base import REGISTRY, Toolbox

FORMAT_REMINDER = "Reply with one line: a tool name, a colon and its input (calculator: 2 * 3), or answer: <answer>."
STOP = ["\n"]


def first_observation(objective: str) -> str:
    return f"Task: {objective}"


def _task(objective: str) -> str:
    return f"\n{first_observation(objective)}"


def tool_observation(result: str, objective: str) -> str:
    """The tool's result, then the task again: a small model forgets the rest of the plan once a result
    arrives (it answered with the file's raw number in every sampled run) unless the task is in view."""
    return f"Result: {clip(result.strip(), 1500)}{_task(objective)}"


def error_observation(error: str, objective: str) -> str:
    return f"Error: {clip(error, 500)}{_task(objective)}"


def malformed_observation(reason: str, objective: str) -> str:
    return f"Error: {reason}. {FORMAT_REMINDER}{_task(objective)}"


def _worked(task: str, *steps: tuple[str, str]) -> list[tuple[str, str]]:
    """A worked exchange in the live format: the task, then (action line, result) turns whose result
    restates the task as ``tool_observation`` does, then the answer."""
    turns = [("user", first_observation(task))]
    for said, result in steps:
        turns += [("assistant", said), ("user", tool_observation(result, task))]
    return turns


EXAMPLES: list[tuple[frozenset[str], list[tuple[str, str]]]] = [
    (frozenset({"file_read", "calculator", "file_write"}), [
        *_worked("Double the value stored in data/apples.txt, keep it in out/twice.txt and tell me.",
                 ("file_read: data/apples.txt", "21"), ("calculator: 21 * 2", "42"),
                 ('file_write: {"path": "out/twice.txt", "content": "42"}', "wrote 2 bytes to out/twice.txt")),
        ("assistant", "answer: 42")]),
    (frozenset({"lookup", "calculator"}), [
        *_worked("I need 3 teapots. How much will they be?", ("lookup: price of a teapot",
                 "shop.txt:1: price of a teapot: 15 coins"), ("calculator: 3 * 15", "45")),
        ("assistant", "answer: 45")]),
    (frozenset({"file_read", "calculator"}), [
        *_worked("Double the value stored in data/apples.txt.", ("file_read: data/apples.txt", "21"),
                 ("calculator: 21 * 2", "42")),
        ("assistant", "answer: 42")]),
    (frozenset({"calculator"}), [
        *_worked("What is 6 * 7 + 1?", ("calculator: 6 * 7 + 1", "43")), ("assistant", "answer: 43")]),
]
"""Worked exchanges; a session shows the first whose tools it has (none if none fits), so the larger tool
sets come first. They are context only — recorded in the prefix, never a training target — so they are
prompt, not demonstrations. Each tool a session has should appear in its example: with file_write only in
the tool list, SmolLM2 never wrote a file in a held-out chain run (it read, computed and answered in all
12 and skipped the write)."""

_ROLE = re.compile(r"^[\W_]*(?:(?:you|assistant|agent|action)\s*:\s*)?(?:(?:use_tool|tool)\b\s*:?\s*)?", re.IGNORECASE)
_CALL = (re.compile(r"^([A-Za-z][\w -]*?)\s*:\s*(.*?)\s*$"), re.compile(r"^([A-Za-z][\w-]*)\((.*)\)\s*$"))
_ANSWER = ("answer", "final answer")


def _tool_line(name: str) -> str:
    kind = REGISTRY.get(name)
    return f"{name}: {kind.usage if kind else '<input>'}"


def system_prompt(tools: Toolbox) -> str:
    """The system message: the reply form, then every tool as a line ready to copy."""
    lines = "\n".join(_tool_line(n) for n in tools.names())
    return ("You solve a task with tools, one tool call per reply. Reply with exactly one line: a tool name, "
            "a colon and the tool's input. When you know the final answer, reply with answer: and the answer "
            f"only.\n\nTools:\n{lines}\nanswer: <the final answer only>")


def example_for(tools: Toolbox) -> list[tuple[str, str]]:
    names = set(tools.names())
    return next((turns for needs, turns in EXAMPLES if needs <= names), [])


def prompt_prefix(tools: Toolbox) -> list[ChatMessage]:
    """What precedes the task: the system message and the worked exchange that fits the tools."""
    example = example_for(tools)
    return [ChatMessage(role="system", content=system_prompt(tools)),
            *(ChatMessage(role=role, content=text) for role, text in example)]  # type: ignore[arg-type]


def encode_prefix(prefix: list[ChatMessage]) -> str:
    """The prefix as recorded in ``agent_config`` (JSON list of {role, content})."""
    return json.dumps([m.model_dump() for m in prefix], ensure_ascii=False)


def parse_reply(text: str, tools: list[str]) -> Decision:
    """The first line of ``text`` that starts with one of ``tools`` or ``answer`` (after role prefixes or a
    ``TOOL`` word, any case); the lines before it are the thought."""
    known = {t.lower(): t for t in tools}
    lines = text.strip().splitlines()
    for i, line in enumerate(lines):
        rest = _ROLE.sub("", line.strip(), count=1).strip("*_ ")
        call = next((m for m in (p.match(rest) for p in _CALL) if m), None)
        if call is None:
            continue
        head, value = call.group(1).strip().lower(), call.group(2).strip().strip("*_ ").strip()
        thought = "\n".join(lines[:i]).strip()
        if head in _ANSWER:
            if not value:
                raise DecisionError("the answer line has no answer")
            return Decision(action="answer", input=value, thought=thought)
        if head in known:
            if not value:
                raise DecisionError(f"the {known[head]} line has no input")
            return Decision(action="use_tool", tool=known[head], input=value, thought=thought)
    raise DecisionError(f"no line starts with a tool name ({', '.join(tools)}) or answer: "
                        f"{clip(text.strip(), 200)!r}")


def explore_head(tools: list[str], called: set[str], draw: random.Random) -> str:
    """The head an exploring step's reply is made to start with: a tool this run has not called yet,
    uniformly, or ``answer`` once every tool has been. Why untried tools: a small model's own failures
    are mostly a missing step (it read the file, then answered the expression instead of calling the
    calculator), so the step it never takes is the one worth trying; no knowledge of the task is used."""
    fresh = [t for t in tools if t not in called]
    return draw.choice(fresh) if fresh else "answer"


def head_prefix(head: str) -> ChatMessage:
    """The assistant message an exploring step's reply continues (``tool:`` or ``answer:``; no trailing
    space, which BPE tokenizers attach to the next word)."""
    return ChatMessage(role="assistant", content=f"{head}:")


def chat(prefix: list[ChatMessage], turns: list[tuple[str, str]], observation: str) -> list[ChatMessage]:
    """The prefix, then (user: observation, assistant: turn) per earlier step, then the current observation."""
    out = list(prefix)
    for seen, said in turns:
        out += [ChatMessage(role="user", content=seen), ChatMessage(role="assistant", content=said)]
    out.append(ChatMessage(role="user", content=observation))
    return out
