"""Prompts for the LLM judge and LLM RULER, and the compact trajectory rendering they share.

The performance judge uses ONE combined prompt asking for all six metrics as one JSON object:
one request per trajectory instead of six (cost and latency on a stream), every metric judged
against the same reading of the run, and a single answer to validate, cache and retry.
Changing any text here changes the cache key (the hash covers the messages), so no stale answer
is reused after a prompt edit.
"""

from __future__ import annotations

from collections.abc import Sequence

from judges.contract import METRICS, ordered_steps
from schemas.models import Answer, Ask, StepRecorded, Think, TrajectoryCompleted, UseTool

Message = dict[str, str]
FIELD_LIMIT = 400

JUDGE_SYSTEM = """You are a strict evaluator of AI agent runs. Score the run on six metrics, each a number from 0 to 1:
- task_completion: how fully the final answer meets the objective and every success criterion.
- solution_quality: correctness and usefulness of the answer, grounded in the tool results.
- efficiency: how directly the agent reached the answer (no wasted or repeated steps).
- tool_usage: right tools with sensible inputs, no redundant calls.
- reasoning_coherence: thoughts that follow from observations and lead to the actions taken.
- error_recovery: how well the agent recovered from errors (1 if there were none).
Reply with ONLY one JSON object, no prose around it:
{"task_completion": 0.0, "solution_quality": 0.0, "efficiency": 0.0, "tool_usage": 0.0,
 "reasoning_coherence": 0.0, "error_recovery": 0.0, "step_scores": [one number 0..1 per step],
 "reasoning": "two sentences on why"}"""

JUDGE_RETRY = ("Your previous reply could not be used ({reason}). Reply again with ONLY the JSON object holding "
               "numbers from 0 to 1 for: " + ", ".join(METRICS) + ".")

RULER_SYSTEM = """You compare several attempts by AI agents at the same task and score each one from 0 to 1.
Judge them relative to each other: the best attempt should score clearly higher than weaker ones, equal attempts
equal scores. Reward attempts that meet the success criteria, reach a correct answer, use tools sensibly and
waste fewer steps; penalise errors left unrecovered and answers not supported by the tool results.
Reply with ONLY this JSON object, one entry per trajectory, using the given trajectory ids:
{"scores": [{"trajectory_id": "t1", "explanation": "one sentence", "score": 0.0}]}"""

RULER_RETRY = ("Your previous reply could not be used ({reason}). Reply again with ONLY the JSON object "
               'holding exactly {count} entries in "scores", one for each of: {ids}.')


def clip(text: str, limit: int = FIELD_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def render_action(step: StepRecorded) -> str:
    action = step.action
    if isinstance(action, UseTool):
        return f"use_tool {action.tool}({clip(action.input)})"
    if isinstance(action, Answer):
        return f"answer: {clip(action.text)}"
    if isinstance(action, Ask):
        return f"ask: {clip(action.question)}"
    assert isinstance(action, Think)
    return f"think: {clip(action.note)}" if action.note else "think"


def render_steps(traj: TrajectoryCompleted) -> str:
    """One compact block per step: thought, action, result or error, reflection."""
    lines: list[str] = []
    for i, ts in enumerate(ordered_steps(traj), start=1):
        s = ts.step
        lines.append(f"step {i}:")
        if s.thought.strip():
            lines.append(f"  thought: {clip(s.thought)}")
        lines.append(f"  action: {render_action(s)}")
        if s.tool_result is not None:
            lines.append(f"  result: {clip(s.tool_result)}")
        if s.error:
            lines.append(f"  error: {clip(s.error)}")
        if s.reflection:
            lines.append(f"  reflection: {clip(s.reflection)}")
    lines.append(f"final answer: {clip(traj.final_answer) if traj.final_answer else '(none)'}")
    lines.append(f"status: {traj.status.value if traj.status else 'unfinished'} (closed by {traj.closed_by.value})")
    return "\n".join(lines)


def render_task(traj: TrajectoryCompleted) -> str:
    criteria = "\n".join(f"- {c}" for c in traj.success_criteria) or "- (none given)"
    return f"Objective: {clip(traj.objective, 2000)}\nSuccess criteria:\n{criteria}"


def judge_messages(traj: TrajectoryCompleted) -> list[Message]:
    user = f"{render_task(traj)}\n\nThe run ({len(traj.steps)} steps):\n{render_steps(traj)}"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def ruler_messages(context: TrajectoryCompleted, blocks: Sequence[tuple[str, str]]) -> list[Message]:
    """The shared task once, then each ``(trajectory_id, rendering)`` after it."""
    parts = [render_task(context), f"\n{len(blocks)} trajectories follow."]
    for label, body in blocks:
        parts.append(f'\n<trajectory id="{label}">\n{body}\n</trajectory>')
    ids = ", ".join(label for label, _ in blocks)
    parts.append(f"\nScore every trajectory: {ids}.")
    return [{"role": "system", "content": RULER_SYSTEM}, {"role": "user", "content": "\n".join(parts)}]
