"""Reward-filtered training windows pulled from ClickHouse, and recorded so a run is reproducible.

Rewards, trajectories and steps are ReplacingMergeTree tables that may hold redelivered duplicates
until a merge; every read uses FINAL, so a duplicate never counts twice. The window's query, its
bound parameters and the exact session ids go to ``training_windows``; ``load_window`` rebuilds the
same window later even when newer rows have arrived in the same time range.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from schemas.models import RewardAssigned, Timestamp, TrajectoryCompleted
from schemas.transcript import EVALUATION, RUN_KIND_KEY
from trainer.errors import TrainerError
from trainer.specializations import keywords_for


class WindowFilter(BaseModel):
    """Which rewarded trajectories a window holds. ``until`` is fixed to now when the window is pulled."""

    reward_version: str = "ruler-heuristic@1"
    since: datetime | None = None
    until: datetime | None = None
    min_reward: float | None = None
    agent: str | None = None
    specialization: str | None = None
    keywords: list[str] = Field(default_factory=list)
    top_k_per_group: int | None = Field(None, ge=1)
    limit: int | None = Field(None, ge=1)
    models: list[str] = Field(default_factory=list, description="only runs of these models (a lineage); empty: any")
    min_success: float | None = Field(None, description="minimum success component of the reward")
    include_evaluation: bool = Field(False, description="evaluation runs never train unless this is set")

    def all_keywords(self) -> list[str]:
        extra = keywords_for(self.specialization) if self.specialization else []
        return [k.lower() for k in [*self.keywords, *extra]]


class WindowStep(BaseModel):
    step_number: int
    observation: str = ""
    thought: str = ""
    action_kind: str
    tool: str = ""
    action_text: str = ""
    action_input: str = ""
    tool_result: str | None = None
    error: str | None = None
    reflection: str | None = None


class WindowTrajectory(BaseModel):
    session_id: str
    agent_name: str
    group_id: str | None
    objective: str
    model: str = ""
    agent_config: dict[str, str] = Field(default_factory=dict)
    status: str = ""
    final_answer: str | None = None
    reward_version: str
    total: float
    advantage: float
    group_size: int = 1  # runs RULER compared in this run's group (1: alone)
    steps: list[WindowStep] = Field(default_factory=list)

    @property
    def group_key(self) -> str:
        return self.group_id or self.session_id


class Window(BaseModel):
    window_id: str
    query: str
    params: dict[str, Any]
    trajectories: list[WindowTrajectory]
    created_at: Timestamp

    @property
    def step_count(self) -> int:
        return sum(len(t.steps) for t in self.trajectories)

    @property
    def group_count(self) -> int:
        return len({t.group_key for t in self.trajectories})

    def successful(self, threshold: float) -> list[WindowTrajectory]:
        return [t for t in self.trajectories if t.total >= threshold]


_TRAJECTORY_COLUMNS = ["session_id", "agent_name", "group_id", "objective", "model", "agent_config", "status",
                       "final_answer", "reward_version", "total", "advantage", "group_size"]
_FROM_REWARDS = ("session_id", "group_id", "reward_version", "total", "advantage", "group_size")
_JOINED_COLUMNS = ", ".join(("r." if c in _FROM_REWARDS else "t.") + f"{c} AS {c}" for c in _TRAJECTORY_COLUMNS)
_STEP_COLUMNS = ["session_id", "step_number", "observation", "thought", "action_kind", "tool", "action_text",
                 "action_input", "tool_result", "error", "reflection"]


def build_query(flt: WindowFilter, until: datetime) -> tuple[str, dict[str, Any]]:
    """SQL with ``{name:Type}`` placeholders and its parameters."""
    where = ["1"]
    params: dict[str, Any] = {"reward_version": flt.reward_version, "until": until}
    if flt.since is not None:
        where.append("t.completed_at >= {since:DateTime64(6, 'UTC')}")
        params["since"] = flt.since
    where.append("t.completed_at < {until:DateTime64(6, 'UTC')}")
    if flt.min_reward is not None:
        where.append("r.total >= {min_reward:Float64}")
        params["min_reward"] = flt.min_reward
    if flt.agent:
        where.append("t.agent_name = {agent:String}")
        params["agent"] = flt.agent
    if flt.models:
        where.append("t.model IN {models:Array(String)}")
        params["models"] = flt.models
    if flt.min_success is not None:
        where.append("r.success >= {min_success:Float64}")
        params["min_success"] = flt.min_success
    if not flt.include_evaluation:
        where.append(f"t.agent_config[{RUN_KIND_KEY!r}] != {EVALUATION!r}")
    if flt.all_keywords():
        where.append("multiSearchAnyCaseInsensitiveUTF8(t.objective, {keywords:Array(String)})")
        params["keywords"] = flt.all_keywords()
    rank = ""
    if flt.top_k_per_group is not None:
        rank = "WHERE rank <= {top_k:UInt32}"
        params["top_k"] = flt.top_k_per_group
    limit = ""
    if flt.limit is not None:
        limit = "LIMIT {limit:UInt32}"
        params["limit"] = flt.limit
    sql = f"""
SELECT {", ".join(_TRAJECTORY_COLUMNS)} FROM (
  SELECT r.session_id AS session_id, t.agent_name AS agent_name, r.group_id AS group_id,
         t.objective AS objective, t.model AS model, t.agent_config AS agent_config, t.status AS status,
         t.final_answer AS final_answer,
         r.reward_version AS reward_version, r.total AS total, r.advantage AS advantage,
         r.group_size AS group_size, t.completed_at AS completed_at,
         row_number() OVER (PARTITION BY ifNull(r.group_id, r.session_id)
                            ORDER BY r.total DESC, r.session_id) AS rank
  FROM (SELECT * FROM rewards FINAL WHERE reward_version = {{reward_version:String}}) AS r
  INNER JOIN (SELECT * FROM trajectories FINAL) AS t ON t.session_id = r.session_id
  WHERE {" AND ".join(where)}
) {rank}
ORDER BY completed_at, session_id {limit}"""
    return sql.strip(), params


def _steps_for(client: Client, session_ids: list[str]) -> dict[str, list[WindowStep]]:
    out: dict[str, list[WindowStep]] = {s: [] for s in session_ids}
    if not session_ids:
        return out
    result = client.query(f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps FINAL "
                          "WHERE session_id IN {ids:Array(String)} ORDER BY session_id, seq",
                          parameters={"ids": session_ids})
    for row in result.named_results():
        out[row.pop("session_id")].append(WindowStep.model_validate(row))
    return out


def _fetch(client: Client, sql: str, params: dict[str, Any]) -> list[WindowTrajectory]:
    try:
        rows = list(client.query(sql, parameters=params).named_results())
        steps = _steps_for(client, [r["session_id"] for r in rows])
    except Exception as exc:  # clickhouse-connect raises several unrelated types
        raise TrainerError(f"pulling the window failed: {exc}") from exc
    return [WindowTrajectory(**r, steps=steps[r["session_id"]]) for r in rows]


def _window_id(sql: str, params: dict[str, Any], session_ids: list[str]) -> str:
    doc = json.dumps([sql, params, sorted(session_ids)], default=str, sort_keys=True)
    return "w" + hashlib.sha1(doc.encode()).hexdigest()[:15]


def pull_window(client: Client, flt: WindowFilter, *, record: bool = True) -> Window:
    """Run the window query now and (by default) record it in ``training_windows``."""
    until = flt.until or datetime.now(UTC)
    sql, params = build_query(flt, until)
    trajectories = _fetch(client, sql, params)
    window = Window(window_id=_window_id(sql, params, [t.session_id for t in trajectories]), query=sql,
                    params={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()},
                    trajectories=trajectories, created_at=datetime.now(UTC))
    if record:
        record_window(client, window)
    return window


def record_window(client: Client, window: Window) -> None:
    client.insert("training_windows", [[
        window.window_id, window.query, json.dumps(window.params, sort_keys=True), window.params["reward_version"],
        [t.session_id for t in window.trajectories], len(window.trajectories), window.step_count,
        window.group_count, window.created_at]],
        column_names=["window_id", "query", "params", "reward_version", "session_ids", "trajectory_count",
                      "step_count", "group_count", "created_at"])


def load_window(client: Client, window_id: str) -> Window:
    """The recorded window: same session ids, current (deduplicated) rows for them."""
    rows = list(client.query("SELECT query, params, session_ids, created_at FROM training_windows FINAL "
                             "WHERE window_id = {id:String}", parameters={"id": window_id}).named_results())
    if not rows:
        raise TrainerError(f"no training window {window_id}")
    row = rows[0]
    params = json.loads(row["params"])
    sql = (f"SELECT {_JOINED_COLUMNS} "
           "FROM (SELECT * FROM rewards FINAL WHERE reward_version = {rv:String} "
           "AND session_id IN {ids:Array(String)}) AS r "
           "INNER JOIN (SELECT * FROM trajectories FINAL) AS t ON t.session_id = r.session_id "
           "ORDER BY t.completed_at, r.session_id")
    trajectories = _fetch(client, sql, {"rv": params["reward_version"], "ids": list(row["session_ids"])})
    return Window(window_id=window_id, query=row["query"], params=params, trajectories=trajectories,
                  created_at=row["created_at"])


def window_from_runs(runs: list[tuple[TrajectoryCompleted, RewardAssigned]], window_id: str = "w-local") -> Window:
    """A window straight from events (benchmarks, tests of the dataset builders); nothing is queried."""
    trajectories = []
    for traj, reward in runs:
        steps = [WindowStep(step_number=s.step.step_number, observation=s.step.observation, thought=s.step.thought,
                            action_kind=s.step.action.kind, tool=getattr(s.step.action, "tool", ""),
                            action_text=action_text(s.step.action), action_input=s.step.action_input,
                            tool_result=s.step.tool_result, error=s.step.error, reflection=s.step.reflection)
                 for s in sorted(traj.steps, key=lambda s: s.seq)]
        trajectories.append(WindowTrajectory(
            session_id=traj.session_id, agent_name=traj.agent_name, group_id=reward.group_id,
            objective=traj.objective, model=traj.model, agent_config=traj.agent_config,
            status=str(traj.status or ""), final_answer=traj.final_answer,
            reward_version=reward.reward_version, total=reward.total, advantage=reward.advantage,
            group_size=reward.group_size, steps=steps))
    return Window(window_id=window_id, query="", params={"source": "events"}, trajectories=trajectories,
                  created_at=datetime.now(UTC))


def action_text(action: Any) -> str:
    """The free text of an action, as the sink stores it in ``steps.action_text``."""
    return {"use_tool": lambda a: a.input, "answer": lambda a: a.text, "ask": lambda a: a.question,
            "think": lambda a: a.note}[action.kind](action)


def split_window(window: Window, fraction: float, seed: int = 0) -> tuple[Window, Window]:
    """(train, held-out) split by whole groups, so a held-out group's runs were never trained on."""
    groups = sorted({t.group_key for t in window.trajectories})
    random.Random(seed).shuffle(groups)
    n_held = max(1, round(len(groups) * fraction)) if fraction > 0 and len(groups) > 1 else 0
    held = set(groups[:n_held])
    train = [t for t in window.trajectories if t.group_key not in held]
    test = [t for t in window.trajectories if t.group_key in held]
    return (window.model_copy(update={"trajectories": train}),
            window.model_copy(update={"window_id": window.window_id + "-heldout", "trajectories": test}))
