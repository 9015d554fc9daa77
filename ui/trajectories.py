"""The trajectory list (filters, keyset pages) and one trajectory with its steps, scores and group.

The list is fast at a million rows because a page reads only ``(completed_at, session_id)`` of the
rows that pass the filters, takes the top ``limit`` after the cursor (ClickHouse's partial sort),
and only then reads those rows' columns and scores by primary key (``session_id IN …``).
Rows are read without FINAL: the sink stores each natural key once; a duplicate that slipped in
before a merge is dropped here by key, never shown twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ui.filters import Cursor, TrajectoryFilter
from ui.store import UiStore

MAX_STEPS = 500
MAX_GROUP = 64
MAX_TEXT = 16384  # characters of one step field on the page; a longer one says how long it was
TEXT_FIELDS = ("observation", "thought", "action_text", "action_input", "tool_result", "error", "reflection")
_STEPS = ("SELECT seq, step_number, action_kind, tool, step_reward, step_metadata, timestamp, execution_time_ms, "
          "tokens, cost, length(completions) AS completions, "
          # the cut text must not take the column's name: ClickHouse would measure the alias
          + ", ".join(f"substringUTF8({f}, 1, {{cut:UInt32}}) AS {f}_text, lengthUTF8({f}) AS {f}_chars"
                      for f in TEXT_FIELDS)
          + " FROM steps WHERE session_id = {sid:String} ORDER BY seq LIMIT 1 BY seq LIMIT {n:UInt32}")

_COLUMNS = """session_id, agent_name, group_id, status, model, objective, started_at, completed_at, step_count,
       total_tokens, total_cost, error_count, closed_by"""
_OPTIONS = """SELECT
  (SELECT groupArray(v) FROM (SELECT DISTINCT concat(judge_name, '@', judge_version) AS v FROM judgments ORDER BY v
                              LIMIT 200)) AS judges,
  (SELECT groupArray(v) FROM (SELECT DISTINCT reward_version AS v FROM rewards ORDER BY v LIMIT 200)) AS rewards,
  (SELECT groupArray(v) FROM (SELECT DISTINCT agent_name AS v FROM trajectories ORDER BY v LIMIT 500)) AS agents,
  (SELECT groupArray(v) FROM (SELECT DISTINCT model AS v FROM trajectories ORDER BY v LIMIT 500)) AS models"""
# the page's rows with the shown reward and judgment: the few scores come as arrays (scalar subqueries,
# each read by primary key) and are picked per row; *_at = 0 where a version is missing
_ROWS = f"""WITH
  (SELECT groupArray((session_id, total, advantage)) FROM rewards
   WHERE session_id IN {{ids:Array(String)}} AND reward_version = {{rv:String}}) AS r_all,
  (SELECT groupArray((session_id, overall)) FROM judgments
   WHERE session_id IN {{ids:Array(String)}} AND judge_name = {{judge_name:String}}
     AND judge_version = {{judge_version:String}}) AS j_all
SELECT {_COLUMNS},
       indexOf(arrayMap(x -> x.1, r_all), session_id) AS r_at, r_all[r_at].2 AS reward, r_all[r_at].3 AS advantage,
       indexOf(arrayMap(x -> x.1, j_all), session_id) AS j_at, j_all[j_at].2 AS judge_score
FROM trajectories WHERE session_id IN {{ids:Array(String)}} LIMIT 1 BY session_id"""

_GROUP = """SELECT t.session_id AS session_id, t.agent_name AS agent_name, t.status AS status,
       t.step_count AS step_count, t.error_count AS error_count, t.total_tokens AS total_tokens,
       t.completed_at AS completed_at, t.final_answer AS final_answer, s.scores AS scores
FROM (SELECT session_id, agent_name, status, step_count, error_count, total_tokens, completed_at, final_answer
      FROM trajectories WHERE group_id = {g:String} ORDER BY completed_at, session_id LIMIT 1 BY session_id
      LIMIT {n:UInt32}) AS t
LEFT JOIN (SELECT session_id, groupArray((reward_version, total, advantage)) AS scores
           FROM (SELECT session_id, reward_version, total, advantage FROM rewards WHERE group_id = {g:String}
                 ORDER BY assigned_at LIMIT 1 BY session_id, reward_version)
           GROUP BY session_id) AS s ON s.session_id = t.session_id
ORDER BY completed_at, session_id"""


@dataclass
class Versions:
    judges: list[str]
    rewards: list[str]
    judge: str  # shown in the list (the filter's, else the configured one)
    reward: str


@dataclass
class ListPage:
    rows: list[dict[str, Any]]
    total: int
    newer: str | None  # cursor of the previous (newer) page
    older: str | None
    versions: Versions
    agents: list[str]
    models: list[str]


@dataclass
class Detail:
    trajectory: dict[str, Any]
    steps: list[dict[str, Any]]
    judgments: list[dict[str, Any]]
    rewards: list[dict[str, Any]]
    group: list[dict[str, Any]] = field(default_factory=list)
    group_versions: list[str] = field(default_factory=list)
    steps_cut: bool = False


def _versions(options: dict[str, Any], flt: TrajectoryFilter, judge_default: str, reward_default: str) -> Versions:
    judges, rewards = list(options.get("judges", [])), list(options.get("rewards", []))
    judge = flt.judge or (judge_default if judge_default in judges or not judges else judges[0])
    reward = flt.reward_version or (reward_default if reward_default in rewards or not rewards else rewards[0])
    return Versions(judges=judges, rewards=rewards, judge=judge, reward=reward)


async def list_page(store: UiStore, flt: TrajectoryFilter, judge_default: str, reward_default: str) -> ListPage:
    """One page: three round trips (options, keys with the total, rows with their scores)."""
    options = await store.one(_OPTIONS)
    shown = _versions(options, flt, judge_default, reward_default)
    where, params = flt.conditions(shown.reward)
    cursor = flt.cursor()
    order = "DESC"
    paged = list(where)
    if cursor is not None:
        direction, at = cursor
        paged.append("(completed_at, session_id) " + ("<" if direction == "before" else ">")
                     + " ({c_at:DateTime64(6, 'UTC')}, {c_id:String})")
        params |= {"c_at": at.completed_at, "c_id": at.session_id}
        order = "DESC" if direction == "before" else "ASC"
    count_sql = "SELECT count() FROM trajectories" + _where(where)
    keys = await store.rows(f"SELECT session_id, completed_at, ({count_sql}) AS total FROM trajectories"
                            f"{_where(paged)} ORDER BY completed_at {order}, session_id {order} LIMIT {{n:UInt32}}",
                            params | {"n": flt.limit + 1})
    if keys:
        total = int(keys[0]["total"])
    elif cursor is None:
        total = 0
    else:
        total = int((await store.one(count_sql.replace("count()", "count() AS n"), params)).get("n", 0))
    more = len(keys) > flt.limit
    if cursor is not None and cursor[0] == "after" and not more:  # back at the newest rows: the first page
        return await list_page(store, flt.model_copy(update={"after": None}), judge_default, reward_default)
    keys = _unique(keys[:flt.limit])
    if order == "ASC":
        keys.reverse()
    rows = await _rows(store, [k["session_id"] for k in keys], shown)
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    backwards = cursor is not None and cursor[0] == "after"
    newer = _cursor(first) if first and (cursor is not None and (not backwards or more)) else None
    older = _cursor(last) if last and (backwards or more) else None
    return ListPage(rows=rows, total=total, newer=newer, older=older, versions=shown,
                    agents=list(options.get("agents", [])), models=list(options.get("models", [])))


async def _rows(store: UiStore, ids: list[str], shown: Versions) -> list[dict[str, Any]]:
    if not ids:
        return []
    name, _, version = shown.judge.partition("@")
    found = {r["session_id"]: r for r in await store.rows(
        _ROWS, {"ids": ids, "rv": shown.reward, "judge_name": name, "judge_version": version})}
    out = []
    for sid in ids:
        row = found.get(sid)
        if row is None:
            continue
        if not row.pop("r_at"):
            row["reward"] = row["advantage"] = None
        if not row.pop("j_at"):
            row["judge_score"] = None
        out.append(row)
    return out


async def detail(store: UiStore, session_id: str) -> Detail | None:
    traj = await store.one(
        f"SELECT {_COLUMNS}, final_answer, agent_config, success_criteria, tools_used, missing_seqs, execution_time_ms,"
        " efficiency, log_epoch, topic, partition, offset FROM trajectories WHERE session_id = {sid:String} LIMIT 1",
        {"sid": session_id})
    if not traj:
        return None
    steps = await store.rows(_STEPS, {"sid": session_id, "n": MAX_STEPS + 1, "cut": MAX_TEXT})
    for step in steps:
        step |= {f: step.pop(f"{f}_text") for f in TEXT_FIELDS}
        lengths = {f: step.pop(f"{f}_chars") or 0 for f in TEXT_FIELDS}
        step["cut"] = {f: n for f, n in lengths.items() if n > MAX_TEXT}
    judgments = await store.rows(
        "SELECT concat(judge_name, '@', judge_version) AS version, task_completion, solution_quality, efficiency, "
        "tool_usage, reasoning_coherence, error_recovery, overall, reasoning, judged_at FROM judgments "
        "WHERE session_id = {sid:String} ORDER BY judged_at LIMIT 1 BY judge_name, judge_version", {"sid": session_id})
    rewards = await store.rows(
        "SELECT reward_version AS version, total, success, efficiency, quality, novelty, confidence, advantage, "
        "group_size, reasoning, assigned_at FROM rewards WHERE session_id = {sid:String} "
        "ORDER BY assigned_at LIMIT 1 BY reward_version", {"sid": session_id})
    out = Detail(trajectory=traj, steps=steps[:MAX_STEPS], judgments=judgments, rewards=rewards,
                 steps_cut=len(steps) > MAX_STEPS)
    if traj.get("group_id") is not None:
        out.group, out.group_versions = await _group(store, traj["group_id"])
    return out


async def _group(store: UiStore, group_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The RULER group's members, each with its reward and advantage under every version."""
    members = await store.rows(_GROUP, {"g": group_id, "n": MAX_GROUP})
    versions: set[str] = set()
    for m in members:
        m["scores"] = {v: {"total": total, "advantage": advantage} for v, total, advantage in m["scores"]}
        versions.update(m["scores"])
    return members, sorted(versions)


def _where(conditions: list[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def _unique(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for k in keys:
        if k["session_id"] not in seen:
            seen.add(k["session_id"])
            out.append(k)
    return out


def _cursor(row: dict[str, Any]) -> str:
    return Cursor(completed_at=row["completed_at"], session_id=row["session_id"]).text()
