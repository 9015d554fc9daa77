"""ClickHouse rows (columns of store/ddl) from ``schemas.models`` events, as the pipeline sink writes them."""

from __future__ import annotations

from typing import Any

from schemas.models import RewardAssigned, TrajectoryCompleted
from trainer.windows import action_text

SOURCE = {"log_epoch": 0, "topic": "test", "partition": 0, "offset": 0}


def trajectory_row(t: TrajectoryCompleted) -> dict[str, Any]:
    m = t.metadata
    return {"session_id": t.session_id, "agent_name": t.agent_name, "group_id": t.group_id,
            "objective": t.objective, "model": t.model, "agent_config": t.agent_config,
            "success_criteria": t.success_criteria, "final_answer": t.final_answer,
            "status": str(t.status or ""), "closed_by": str(t.closed_by), "missing_seqs": t.missing_seqs,
            "started_at": t.started_at, "completed_at": t.completed_at, "step_count": m.step_count,
            "total_tokens": m.total_tokens, "total_cost": m.total_cost, "tools_used": m.tools_used,
            "error_count": m.error_count, "execution_time_ms": m.execution_time_ms, "efficiency": m.efficiency,
            "payload": t.model_dump_json(), "event_id": t.event_id, **SOURCE}


def step_rows(t: TrajectoryCompleted) -> list[dict[str, Any]]:
    out = []
    for ts in t.steps:
        s = ts.step
        out.append({"session_id": t.session_id, "seq": ts.seq, "step_number": s.step_number,
                    "agent_name": t.agent_name, "observation": s.observation, "thought": s.thought,
                    "action_kind": s.action.kind, "tool": getattr(s.action, "tool", ""),
                    "action_text": action_text(s.action), "action_input": s.action_input,
                    "tool_result": s.tool_result, "error": s.error, "reflection": s.reflection,
                    "step_reward": s.step_reward, "step_metadata": s.step_metadata, "timestamp": s.timestamp,
                    "execution_time_ms": s.execution_time_ms, "tokens": s.tokens, "cost": s.cost,
                    "event_id": t.event_id, "emitted_at": s.timestamp, **SOURCE})
    return out


def reward_row(r: RewardAssigned) -> dict[str, Any]:
    return {"session_id": r.session_id, "agent_name": r.agent_name, "group_id": r.group_id,
            "reward_version": r.reward_version, "total": r.total, "success": r.success,
            "efficiency": r.efficiency, "quality": r.quality, "novelty": r.novelty, "reasoning": r.reasoning,
            "confidence": r.confidence, "advantage": r.advantage, "group_size": r.group_size,
            "assigned_at": r.assigned_at, "event_id": r.event_id, **SOURCE}


def _insert(client: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        cols = list(rows[0])
        client.insert(table, [[r[c] for c in cols] for r in rows], column_names=cols)


def insert_runs(client: Any, runs: list[tuple[TrajectoryCompleted, RewardAssigned]]) -> None:
    """Insert trajectories, steps and rewards for ``runs``."""
    _insert(client, "trajectories", [trajectory_row(t) for t, _ in runs])
    _insert(client, "steps", [row for t, _ in runs for row in step_rows(t)])
    _insert(client, "rewards", [reward_row(r) for _, r in runs])
