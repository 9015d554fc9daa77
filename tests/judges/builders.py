"""Small constructed trajectories for hand-computed expectations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.models import (
    Action,
    Answer,
    ClosedBy,
    SessionStatus,
    StepRecorded,
    Think,
    TrajectoryCompleted,
    TrajectoryMetadata,
    TrajectoryStep,
    UseTool,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def tool(name: str, arg: str, *, thought: str = "", result: str | None = "ok",
         error: str | None = None) -> StepRecorded:
    return _step(UseTool(tool=name, input=arg), thought, result if error is None else None, error)


def answer(text: str, *, thought: str = "") -> StepRecorded:
    return _step(Answer(text=text), thought, None, None)


def think(thought: str = "") -> StepRecorded:
    return _step(Think(), thought, None, None)


def _step(action: Action, thought: str, result: str | None, error: str | None) -> StepRecorded:
    return StepRecorded(step_number=0, observation="", thought=thought, action=action, tool_result=result,
                        error=error, timestamp=T0)


def trajectory(steps: Sequence[StepRecorded], *, session_id: str = "s1", criteria: Sequence[str] = (),
               final_answer: str | None = None, status: SessionStatus | None = SessionStatus.succeeded,
               group_id: str | None = None, closed_by: ClosedBy = ClosedBy.completed,
               objective: str = "What is the capital of France?") -> TrajectoryCompleted:
    return TrajectoryCompleted(
        session_id=session_id, agent_name="agent-1", group_id=group_id, objective=objective, model="m",
        success_criteria=list(criteria),
        steps=[TrajectoryStep(seq=i + 1, step=s.model_copy(update={"step_number": i + 1}))
               for i, s in enumerate(steps)],
        final_answer=final_answer, status=status, closed_by=closed_by, started_at=T0, completed_at=T0,
        metadata=TrajectoryMetadata(step_count=len(steps), total_tokens=0, total_cost=0.0, tools_used=[],
                                    error_count=sum(1 for s in steps if s.error), execution_time_ms=0,
                                    efficiency=0.0),
    )
