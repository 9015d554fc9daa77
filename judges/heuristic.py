"""Deterministic performance judge: six metrics from the trajectory alone, no LLM.

Notation: n steps (ordered by seq), C the success criteria, A the answer text (``final_answer``,
else the last Answer action's text), k tool calls (UseTool steps).

- task_completion: C non-empty -> share of criteria met: a criterion starting with ``file:`` names a
  file the run must have written (``file:out/sum.txt = 475``, see ``schemas.criteria``); one starting
  with ``=`` is exact (``= 391``: the stripped A equals the stripped text after ``=``, case aside); any
  other must be a substring of A (case aside); no criteria -> 1.0 if status is ``succeeded`` else 0.0.
- efficiency: estimate = max(3, 2*len(C) + 1); min(1, estimate / n); 0.0 when n == 0.
- tool_usage: redundant = k - |distinct (tool, input)|; switches = adjacent tool calls with different
  tools; thrash = max(0, switches - (distinct tools - 1)) / (k - 1) (0 when k <= 1), i.e. switches
  beyond the minimum needed to use each tool once; tool_usage = (1 - redundant/k) * (1 - 0.5*thrash);
  1.0 when k == 0 (nothing misused).
- error_recovery: 1.0 if no step has an error, else recovered / errors, where an error step is
  recovered when a later step has no error and the session succeeded.
- reasoning_coherence: mean of (share of steps with a non-empty thought; share of tool calls whose
  thought names the tool, 1.0 when k == 0; 1.0 if an answer is present at the end else 0.0).
- solution_quality: 0.0 without an answer, else 0.5*task_completion + 0.5*tool success rate
  (tool calls without error / k, 1.0 when k == 0).

Step rewards, one per step: error -> 0.0; repeated (tool, input) -> 0.2; Answer -> task_completion;
otherwise 1.0 with a thought, 0.5 without.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from config.settings import JudgeConfig
from judges.contract import JudgeWeights, MetricScores, make_judgment, ordered_steps
from schemas.criteria import FILE_PREFIX, file_criterion_met
from schemas.models import Answer, SessionStatus, TrajectoryCompleted, TrajectoryJudged, UseTool


@dataclass(frozen=True)
class Measurement:
    """The metrics plus the counts behind them (for reasoning text and for RULER)."""

    scores: MetricScores
    step_rewards: list[float]
    criteria_matched: int
    criteria_total: int
    step_count: int
    step_estimate: int
    tool_calls: int
    redundant_calls: int
    errors: int
    recovered_errors: int

    def explain(self) -> str:
        s = self.scores
        crit = (f"{self.criteria_matched}/{self.criteria_total} criteria matched" if self.criteria_total
                else "no criteria, judged by status")
        return (f"completion {s.task_completion:.2f} ({crit}); efficiency {s.efficiency:.2f} "
                f"({self.step_count} steps vs estimate {self.step_estimate}); tool usage {s.tool_usage:.2f} "
                f"({self.tool_calls} calls, {self.redundant_calls} redundant); errors recovered "
                f"{self.recovered_errors}/{self.errors}; coherence {s.reasoning_coherence:.2f}; "
                f"quality {s.solution_quality:.2f}")


def answer_text(traj: TrajectoryCompleted) -> str:
    """The final answer, else the text of the last Answer action, else ''."""
    if traj.final_answer:
        return traj.final_answer
    for ts in reversed(ordered_steps(traj)):
        if isinstance(ts.step.action, Answer):
            return ts.step.action.text
    return ""


def criterion_met(criterion: str, answer: str, writes: list[str] | None = None) -> bool:
    """``answer`` is stripped; ``criterion`` is a non-blank success criterion (see the module docstring);
    ``writes`` the inputs of the run's error-free file_write calls, in order."""
    c = criterion.strip()
    if c.startswith(FILE_PREFIX):
        return file_criterion_met(c, writes or [])
    if c.startswith("="):
        return answer.lower() == c[1:].strip().lower()
    return c.lower() in answer.lower()


def step_estimate(traj: TrajectoryCompleted) -> int:
    return max(3, 2 * len(traj.success_criteria) + 1)


def measure(traj: TrajectoryCompleted) -> Measurement:
    """Compute every heuristic metric; pure and deterministic (see the module docstring)."""
    steps = [ts.step for ts in ordered_steps(traj)]
    n = len(steps)
    answer = answer_text(traj).strip()
    succeeded = traj.status == SessionStatus.succeeded

    criteria = [c for c in traj.success_criteria if c.strip()]
    writes = [s.action.input for s in steps if isinstance(s.action, UseTool) and s.action.tool == "file_write"
              and not s.error]
    matched = sum(1 for c in criteria if criterion_met(c, answer, writes))
    completion = matched / len(criteria) if criteria else (1.0 if succeeded else 0.0)

    estimate = step_estimate(traj)
    efficiency = min(1.0, estimate / n) if n else 0.0

    calls = [s for s in steps if isinstance(s.action, UseTool)]
    k = len(calls)
    pairs = [(s.action.tool, s.action.input) for s in calls if isinstance(s.action, UseTool)]
    tools = [tool for tool, _ in pairs]
    redundant = k - len(set(pairs))
    switches = sum(1 for a, b in pairwise(tools) if a != b)
    thrash = max(0, switches - (len(set(tools)) - 1)) / (k - 1) if k > 1 else 0.0
    tool_usage = (1 - redundant / k) * (1 - 0.5 * thrash) if k else 1.0

    error_at = [i for i, s in enumerate(steps) if s.error]
    recovered = sum(1 for i in error_at if succeeded and any(not s.error for s in steps[i + 1:]))
    recovery = recovered / len(error_at) if error_at else 1.0

    with_thought = sum(1 for s in steps if s.thought.strip()) / n if n else 0.0
    named = (sum(1 for s, (tool, _) in zip(calls, pairs, strict=True) if tool.lower() in s.thought.lower()) / k
             if k else 1.0)
    answered = 1.0 if answer else 0.0
    coherence = (with_thought + named + answered) / 3

    tool_ok = sum(1 for s in calls if not s.error) / k if k else 1.0
    quality = 0.5 * completion + 0.5 * tool_ok if answer else 0.0

    rewards: list[float] = []
    seen: set[tuple[str, str]] = set()
    for s in steps:
        if s.error:
            rewards.append(0.0)
        elif isinstance(s.action, UseTool) and (s.action.tool, s.action.input) in seen:
            rewards.append(0.2)
        elif isinstance(s.action, Answer):
            rewards.append(completion)
        else:
            rewards.append(1.0 if s.thought.strip() else 0.5)
        if isinstance(s.action, UseTool):
            seen.add((s.action.tool, s.action.input))

    scores = MetricScores(
        task_completion=completion,
        solution_quality=quality,
        efficiency=efficiency,
        tool_usage=tool_usage,
        reasoning_coherence=coherence,
        error_recovery=recovery,
    )
    return Measurement(scores, rewards, matched, len(criteria), n, estimate, k, redundant, len(error_at), recovered)


class HeuristicJudge:
    """The embedded default judge: no network, same input -> same judgment (and same event id)."""

    def __init__(self, *, name: str = "heuristic", version: str = "1", weights: JudgeWeights | None = None) -> None:
        self.name = name
        self.version = version
        self.weights = weights or JudgeWeights()

    @classmethod
    def from_config(cls, config: JudgeConfig) -> HeuristicJudge:
        return cls(name=config.name, version=config.version, weights=JudgeWeights.from_config(config))

    def judge(self, traj: TrajectoryCompleted) -> TrajectoryJudged:
        m = measure(traj)
        return make_judgment(traj, name=self.name, version=self.version, scores=m.scores, weights=self.weights,
                             step_rewards=m.step_rewards, reasoning=m.explain())

    async def ajudge(self, traj: TrajectoryCompleted) -> TrajectoryJudged:
        return self.judge(traj)
