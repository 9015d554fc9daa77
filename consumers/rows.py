"""Decoded Avro records -> ClickHouse rows, one function per table.

Every row carries the log coordinates (epoch, topic, partition, offset) of the message it came
from, so audits and replays can find it in the log again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Source = tuple[int, str, int, int]  # log_epoch, topic, partition, offset
RowBuilder = Callable[[dict[str, Any], bytes, Source], list[Any]]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # natural key: one logical row per key value
    build: RowBuilder

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_of", operator.itemgetter(*[self.columns.index(k) for k in self.key]))
        if len(self.key) == 1:  # itemgetter of one index returns the value itself: keep keys tuples
            single = self.key_of
            object.__setattr__(self, "key_of", lambda row: (single(row),))

    key_of: Callable[[list[Any]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)


SOURCE_COLUMNS = ("log_epoch", "topic", "partition", "offset")


def _session_event(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    return [data["session_id"], data["seq"], data["event_id"], data["payload"]["kind"], data["agent_name"],
            data["ts"], raw, *src]


ACTION_TEXT = {"use_tool": "input", "answer": "text", "ask": "question", "think": "note"}


def step_row(session_id: str, seq: int, agent_name: str, step: dict[str, Any]) -> list[Any]:
    """The steps-table columns of one step (shared by the sink and the trajectory mirror)."""
    action = step["action"]
    return [session_id, seq, step["step_number"], agent_name, step["observation"], step["thought"],
            action["kind"], action.get("tool", ""), action[ACTION_TEXT[action["kind"]]], step["action_input"],
            step["tool_result"], step["error"], step["reflection"], step["step_reward"], step["step_metadata"],
            step["timestamp"], step["execution_time_ms"], step["tokens"], step["cost"],
            [(c["purpose"], c["model"], c["token_ids"], c["logprobs"]) for c in step.get("completions", ())]]


def _step(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    return [*step_row(data["session_id"], data["seq"], data["agent_name"], data["payload"]),
            data["event_id"], data["ts"], *src]


def _trajectory(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    md = data["metadata"]
    return [data["session_id"], data["agent_name"], data["group_id"], data["objective"], data["model"],
            data["agent_config"], data["success_criteria"], data["final_answer"], data["status"] or "",
            data["closed_by"], data["missing_seqs"], data["started_at"], data["completed_at"], md["step_count"],
            md["total_tokens"], md["total_cost"], md["tools_used"], md["error_count"], md["execution_time_ms"],
            md["efficiency"], raw, data["event_id"], *src]


def _judgment(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    return [data[c] for c in JUDGMENTS.columns[: -(len(SOURCE_COLUMNS) + 1)]] + [data["event_id"], *src]


def _reward(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    return [data[c] for c in REWARDS.columns[: -(len(SOURCE_COLUMNS) + 1)]] + [data["event_id"], *src]


def _dead_letter(data: dict[str, Any], raw: bytes, src: Source) -> list[Any]:
    return [data["event_id"], data["source_topic"], data["source_partition"], data["source_offset"], data["raw"],
            data["reason"], data["occurred_at"], *src]


SESSION_EVENTS = TableSpec("session_events", ("session_id", "seq", "event_id", "kind", "agent_name", "ts", "payload",
                                              *SOURCE_COLUMNS), ("session_id", "seq"), _session_event)
STEPS = TableSpec("steps", (
    "session_id", "seq", "step_number", "agent_name", "observation", "thought", "action_kind", "tool", "action_text",
    "action_input", "tool_result", "error", "reflection", "step_reward", "step_metadata", "timestamp",
    "execution_time_ms", "tokens", "cost", "completions", "event_id", "emitted_at", *SOURCE_COLUMNS),
    ("session_id", "seq"), _step)
TRAJECTORIES = TableSpec("trajectories", (
    "session_id", "agent_name", "group_id", "objective", "model", "agent_config", "success_criteria", "final_answer",
    "status", "closed_by", "missing_seqs", "started_at", "completed_at", "step_count", "total_tokens", "total_cost",
    "tools_used", "error_count", "execution_time_ms", "efficiency", "payload", "event_id", *SOURCE_COLUMNS),
    ("session_id",), _trajectory)
JUDGMENTS = TableSpec("judgments", (
    "session_id", "agent_name", "group_id", "judge_name", "judge_version", "task_completion", "solution_quality",
    "efficiency", "tool_usage", "reasoning_coherence", "error_recovery", "overall", "step_rewards", "reasoning",
    "judged_at", "event_id", *SOURCE_COLUMNS), ("session_id", "judge_name", "judge_version"), _judgment)
REWARDS = TableSpec("rewards", (
    "session_id", "agent_name", "group_id", "reward_version", "total", "success", "efficiency", "quality", "novelty",
    "reasoning", "confidence", "advantage", "group_size", "assigned_at", "event_id", *SOURCE_COLUMNS),
    ("session_id", "reward_version"), _reward)
DEAD_LETTERS = TableSpec("dead_letters", (
    "event_id", "source_topic", "source_partition", "source_offset", "raw", "reason", "occurred_at", *SOURCE_COLUMNS),
    ("event_id",), _dead_letter)

TABLES_BY_RECORD: dict[str, tuple[TableSpec, ...]] = {
    "art.SessionEvent": (SESSION_EVENTS, STEPS),
    "art.TrajectoryCompleted": (TRAJECTORIES,),
    "art.TrajectoryJudged": (JUDGMENTS,),
    "art.RewardAssigned": (REWARDS,),
    "art.DeadLetter": (DEAD_LETTERS,),
}


def rows_for(spec: TableSpec, data: dict[str, Any], raw: bytes, src: Source) -> list[Any] | None:
    """The row ``spec`` gets from this record, or None (only steps skip non-step events)."""
    if spec is STEPS and data["payload"]["kind"] != "step_recorded":
        return None
    return spec.build(data, raw, src)
