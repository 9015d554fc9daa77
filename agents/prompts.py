"""What the runner says to the model and how it reads the answer back.

Three prompts per cycle: *think* (free text, with success patterns from similar past runs),
*decide* (one JSON action, with those runs' actions as recommendations) and, every few steps,
*reflect* (on an analysis of the trajectory so far). Each user message starts with a ``PHASE:`` line
so logs and scripted test servers can tell them apart. Parsing is forgiving about fences, prose
around the JSON and key spellings, and strict about the result: a ``Decision`` or ``DecisionError``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from agents.llm import ChatMessage
from agents.missions import Mission
from agents.patterns import ScoredPattern
from agents.recording import ActionT, AgentError
from schemas.models import Answer, Ask, Think, UseTool

HISTORY_STEPS = 8
CLIP = 500


def clip(text: str, limit: int = CLIP) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


@dataclass(frozen=True)
class Turn:
    """One finished step, as the prompts and the analysis see it."""

    step_number: int
    observation: str
    thought: str
    action: ActionT
    tool_result: str | None = None
    error: str | None = None
    reflection: str | None = None

    def action_text(self) -> str:
        a = self.action
        if isinstance(a, UseTool):
            return f"use_tool {a.tool}({clip(a.input, 200)})"
        if isinstance(a, Answer):
            return f"answer: {clip(a.text, 200)}"
        if isinstance(a, Ask):
            return f"ask: {clip(a.question, 200)}"
        return f"think: {clip(a.note, 200)}"

    def describe(self) -> str:
        outcome = f"error: {clip(self.error)}" if self.error else (
            f"result: {clip(self.tool_result)}" if self.tool_result is not None else "ok")
        return (f"Step {self.step_number}: thought: {clip(self.thought, 300)}\n"
                f"  action: {self.action_text()}\n  {outcome}")


@dataclass(frozen=True)
class TrajectoryAnalysis:
    """Numbers the reflection prompt shows: how far along, what was used, what went wrong."""

    steps: int
    max_iterations: int
    tools_used: dict[str, int]
    errors: int
    last_error: str | None
    repeated_actions: int
    useful_results: int

    @property
    def efficiency(self) -> float:
        """Steps that neither failed nor repeated an earlier action, over all steps."""
        return 0.0 if self.steps == 0 else (self.steps - self.errors - self.repeated_actions) / self.steps

    @property
    def progress(self) -> str:
        if self.steps and self.errors * 2 >= self.steps:
            return "stalled: most steps failed"
        if self.repeated_actions:
            return "looping: actions are being repeated"
        return "advancing" if self.useful_results else "not started: no useful tool result yet"

    def render(self) -> str:
        tools = ", ".join(f"{name} x{n}" for name, n in self.tools_used.items()) or "none"
        last = f" (last: {clip(self.last_error, 200)})" if self.last_error else ""
        return (f"Trajectory analysis after {self.steps} steps:\n"
                f"- steps: {self.steps} of {self.max_iterations} allowed ({self.max_iterations - self.steps} left)\n"
                f"- tools used: {tools}\n"
                f"- errors: {self.errors}{last}\n"
                f"- efficiency: {self.efficiency:.2f} (steps that neither failed nor repeated an action)\n"
                f"- progress: {self.progress}; {self.useful_results} useful tool results, "
                f"{self.repeated_actions} repeated actions")


def analyze(turns: Sequence[Turn], max_iterations: int) -> TrajectoryAnalysis:
    tools: Counter[str] = Counter()
    seen: set[str] = set()
    repeated = useful = 0
    for t in turns:
        key = t.action_text()
        if key in seen and not isinstance(t.action, Think):
            repeated += 1
        seen.add(key)
        if isinstance(t.action, UseTool):
            tools[t.action.tool] += 1
            useful += t.error is None and t.tool_result is not None
    errors = [t.error for t in turns if t.error]
    return TrajectoryAnalysis(steps=len(turns), max_iterations=max_iterations, tools_used=dict(tools),
                              errors=len(errors), last_error=errors[-1] if errors else None,
                              repeated_actions=repeated, useful_results=useful)


# --- prompts ---------------------------------------------------------------------------------


def system_message(mission: Mission, tools_text: str) -> ChatMessage:
    criteria = "\n".join(f"- {c}" for c in mission.success_criteria) or "- a correct, complete answer"
    return ChatMessage(role="system", content=(
        f"You are {mission.name}, an agent that solves a task step by step: observe, think, then act with "
        f"exactly one action (use a tool, answer, ask, or think).\n\nObjective: {mission.objective}\n\n"
        f"Success criteria:\n{criteria}\n\nTools:\n{tools_text}"))


def _history(turns: Sequence[Turn]) -> str:
    if not turns:
        return "(no steps yet)"
    shown = turns[-HISTORY_STEPS:]
    skipped = f"({len(turns) - len(shown)} earlier steps not shown)\n" if len(turns) > len(shown) else ""
    return skipped + "\n".join(t.describe() for t in shown)


def _patterns_text(patterns: Sequence[ScoredPattern]) -> str:
    return "\n".join(
        f"{i}. similarity {p.similarity:.2f}, reward {p.pattern.reward:.2f}: "
        f"objective {clip(p.pattern.objective, 200)!r}"
        f"\n   {clip(p.pattern.summary, 300)}" for i, p in enumerate(patterns, start=1))


def think_messages(mission: Mission, tools_text: str, turns: Sequence[Turn], observation: str,
                   patterns: Sequence[ScoredPattern]) -> list[ChatMessage]:
    lessons = (f"Earlier high-reward runs on similar objectives:\n{_patterns_text(patterns)}\n\n"
               if patterns else "")
    last_reflection = next((t.reflection for t in reversed(turns) if t.reflection), None)
    reflection = f"Your latest reflection: {last_reflection}\n\n" if last_reflection else ""
    return [system_message(mission, tools_text), ChatMessage(role="user", content=(
        f"PHASE: think\n\n{lessons}Trajectory so far:\n{_history(turns)}\n\n{reflection}"
        f"Current observation:\n{clip(observation, 2000)}\n\n"
        "Think about what to do next and why. Reply with your reasoning only, in a few sentences."))]


def recommendations(patterns: Sequence[ScoredPattern], limit: int = 8) -> list[str]:
    """Distinct successful actions of similar past runs, best pattern first."""
    out: list[str] = []
    for p in patterns:
        for action in p.pattern.actions:
            if action not in out:
                out.append(action)
    return out[:limit]


def decide_messages(mission: Mission, tools_text: str, observation: str, thought: str,
                    patterns: Sequence[ScoredPattern]) -> list[ChatMessage]:
    recs = recommendations(patterns)
    rec_text = ("Recommended actions (they worked in similar successful runs):\n"
                + "\n".join(f"- {clip(r, 200)}" for r in recs) + "\n\n") if recs else ""
    return [system_message(mission, tools_text), ChatMessage(role="user", content=(
        f"PHASE: decide\n\nCurrent observation:\n{clip(observation, 2000)}\n\nYour thinking:\n{thought}\n\n{rec_text}"
        "Choose ONE action. Reply with one JSON object and nothing else, one of:\n"
        '{"action": "use_tool", "tool": "<tool name>", "input": "<tool input>", "thought": "<why>"}\n'
        '{"action": "answer", "input": "<final answer>", "thought": "<why>"}\n'
        '{"action": "ask", "input": "<question for the user>", "thought": "<why>"}\n'
        '{"action": "think", "input": "<note to self>", "thought": "<why>"}'))]


def reflect_messages(mission: Mission, tools_text: str, turns: Sequence[Turn],
                     analysis: TrajectoryAnalysis) -> list[ChatMessage]:
    return [system_message(mission, tools_text), ChatMessage(role="user", content=(
        f"PHASE: reflect\n\n{analysis.render()}\n\nRecent steps:\n{_history(turns)}\n\n"
        "Reflect in two to four sentences: what is working, what is not, and what to change next."))]


# --- decisions -------------------------------------------------------------------------------


class DecisionError(AgentError):
    """The model's decision was not a usable JSON action."""


class Decision(BaseModel):
    action: Literal["use_tool", "answer", "ask", "think"]
    tool: str = ""
    input: str = ""
    thought: str = ""

    def to_action(self) -> ActionT:
        if self.action == "use_tool":
            return UseTool(tool=self.tool, input=self.input)
        if self.action == "answer":
            return Answer(text=self.input)
        if self.action == "ask":
            return Ask(question=self.input)
        return Think(note=self.input)


_ACTION_ALIASES = {"usetool": "use_tool", "tool": "use_tool", "use": "use_tool", "act": "use_tool",
                   "final_answer": "answer", "finish": "answer", "final": "answer", "respond": "answer",
                   "question": "ask", "ask_user": "ask", "reflect": "think", "note": "think"}
_INPUT_KEYS = ("input", "action_input", "tool_input", "answer", "final_answer", "text", "question", "note",
               "arguments", "args", "query", "expression")
_TOOL_KEYS = ("tool", "tool_name", "name")


def _first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def parse_decision(text: str) -> Decision:
    """The first JSON object in ``text`` read as an action; ``DecisionError`` says what is wrong."""
    doc = _first_json_object(text)
    if doc is None:
        raise DecisionError(f"no JSON object in the decision: {clip(text.strip(), 200)!r}")
    doc = {str(k).strip().lower(): v for k, v in doc.items()}
    raw_action = doc.get("action", doc.get("type"))
    if not isinstance(raw_action, str):
        raise DecisionError(f"decision has no \"action\" string: {clip(json.dumps(doc), 200)}")
    action = raw_action.strip().lower().replace("-", "_").replace(" ", "_")
    action = _ACTION_ALIASES.get(action, action)
    value = next((doc[k] for k in _INPUT_KEYS if k in doc and doc[k] is not None), "")
    tool = next((doc[k] for k in _TOOL_KEYS if isinstance(doc.get(k), str) and doc[k].strip()), "")
    try:
        decision = Decision(action=action, tool=tool.strip(), input=_as_text(value),  # type: ignore[arg-type]
                            thought=_as_text(doc.get("thought", doc.get("reasoning", ""))))
    except ValidationError:
        raise DecisionError(f"unknown action {raw_action!r}: expected use_tool, answer, ask or think") from None
    if decision.action == "use_tool" and not decision.tool:
        raise DecisionError("use_tool decision names no tool")
    if decision.action in ("answer", "ask") and not decision.input.strip():
        raise DecisionError(f"{decision.action} decision has an empty \"input\"")
    return decision
