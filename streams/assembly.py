"""Turns a closed session state plus its step bodies into a ``TrajectoryCompleted``."""

from __future__ import annotations

import uuid

from schemas.models import ClosedBy, StepRecorded, TrajectoryCompleted, TrajectoryStep
from streams.state import SessionState

TRAJECTORY_NAMESPACE = uuid.UUID("6f1c2a7e-4d0b-4c53-9a57-1b0f5a3c2e11")


def trajectory_event_id(session_id: str) -> uuid.UUID:
    """Deterministic: a re-emitted trajectory is byte-identical, so downstream dedup is trivial."""
    return uuid.uuid5(TRAJECTORY_NAMESPACE, f"trajectory:{session_id}")


def missing_steps(state: SessionState, steps: dict[int, StepRecorded]) -> list[int]:
    return [s for s in state.step_seqs if s not in steps]


def assemble(state: SessionState, steps: dict[int, StepRecorded], closed_by: ClosedBy,
             missing_seqs: list[int]) -> TrajectoryCompleted:
    started = state.started
    start_ts = state.started_at or state.last_event_at
    end_ts = state.completed_at or state.last_event_at
    assert start_ts is not None and end_ts is not None, "a session with no applied event cannot close"
    return TrajectoryCompleted(
        event_id=trajectory_event_id(state.session_id),
        session_id=state.session_id,
        agent_name=state.agent_name,
        group_id=started.group_id if started else None,
        objective=started.objective if started else "",
        model=started.model if started else "",
        agent_config=started.agent_config if started else {},
        success_criteria=started.success_criteria if started else [],
        steps=[TrajectoryStep(seq=s, step=steps[s]) for s in state.step_seqs if s in steps],
        final_answer=state.completed.final_answer if state.completed else None,
        status=state.completed.status if state.completed else None,
        closed_by=closed_by,
        missing_seqs=sorted(set(missing_seqs) | {s for s in state.step_seqs if s not in steps}),
        started_at=start_ts,
        completed_at=end_ts,
        metadata=state.metadata(),
    )
