"""Judging on the real stack: trajectories -> judgments + RULER rewards, replay, views, report.

One module-scoped `art up` (each start costs ~10 s) and one module-scoped production (`produced`);
tests run in file order and build on each other's data: the replays re-score what was produced, the
views and the report read what both left behind.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.tracking import Tracker
from tests.ingest.helpers import run_agent, wait_for
from tests.ingest.stack import RunningStack

pytestmark = pytest.mark.slow

GROUPS = {"g-a": [3, 5, 7, 9], "g-b": [2, 4, 6, 8], "g-c": [4, 4, 6, 10]}
PARTIAL = {"g-partial": [3, 6]}  # fewer than rollouts_per_group: scored when the window closes
SINGLES = [5, 7]  # no group: scored alone at once
LATER = {"g-later": [3, 4, 5, 6]}  # produced after `cut`, for --from replays


@dataclass(frozen=True)
class Produced:
    """The sessions the module's stack was given: before ``cut`` and after it (for --from replays)."""

    ids: list[str]
    later_ids: list[str]
    cut: datetime


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("judging")
    env = {"ART_STREAM_SESSION_IDLE_TIMEOUT_S": "4", "ART_JUDGE_ROLLOUTS_PER_GROUP": "4",
           "ART_JUDGE_GROUP_WINDOW_S": "3"}
    with RunningStack(root / "data", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def produced(stack: RunningStack) -> Produced:
    """Every session of the module, all rewarded: the later ones strictly after ``cut``."""
    ids = asyncio.run(produce(stack, {**GROUPS, **PARTIAL}, SINGLES, offset=0))
    client = stack.client()
    wait_for(lambda: count(client, "rewards", ids) >= len(ids), timeout_s=90)
    cut = datetime.now(UTC)
    time.sleep(0.05)
    later_ids = asyncio.run(produce(stack, LATER, [], offset=100))
    wait_for(lambda: count(client, "rewards", later_ids) >= 4, timeout_s=60)
    wait_for(lambda: count(client, "trajectories", later_ids) >= 4, timeout_s=30)
    return Produced(ids, later_ids, cut)


def rows(client: Any, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return client.query(sql, parameters=params).result_rows


def count(client: Any, table: str, ids: list[str], where: str = "1") -> int:
    return rows(client, f"SELECT count() FROM {table} WHERE session_id IN {{ids:Array(String)}} AND {where}",
                ids=ids)[0][0]


async def produce(stack: RunningStack, groups: dict[str, list[int]], singles: list[int], offset: int) -> list[str]:
    async with Tracker.from_config(stack.cfg) as tracker:
        runs = [(g, steps) for g, sizes in groups.items() for steps in sizes] + [(None, s) for s in singles]
        return list(await asyncio.gather(*(run_agent(tracker, offset + i, steps, group=g)
                                           for i, (g, steps) in enumerate(runs))))


def art(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env=stack.env, capture_output=True, text=True,
                          timeout=120, cwd=stack.data_dir.parent)


def replay(stack: RunningStack, *args: str) -> dict[str, Any]:
    out = art(stack, "replay", "--json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_trajectories_are_judged_and_groups_rewarded(stack: RunningStack, produced: Produced) -> None:
    ids = produced.ids
    n = len(ids)
    assert n == 16
    client = stack.client()
    assert count(client, "judgments", ids) == n
    assert count(client, "rewards", ids) == n
    assert rows(client, "SELECT DISTINCT judge_name, judge_version FROM judgments") == [("heuristic", "1")]
    assert rows(client, "SELECT DISTINCT reward_version FROM rewards") == [("ruler-heuristic@1",)]
    per_group = rows(client, """SELECT ifNull(group_id, session_id), count(), any(group_size), sum(advantage),
        max(abs(advantage)) FROM rewards WHERE session_id IN {ids:Array(String)} GROUP BY 1 ORDER BY 1""",
                     ids=ids)
    groups = {g: (c, size, adv, top) for g, c, size, adv, top in per_group}
    for g in GROUPS:
        c, size, adv, top = groups[g]
        assert (c, size) == (4, 4)
        assert abs(adv) < 1e-6 and top > 0.1  # members differ, so advantages do too, and sum to 0
    assert groups["g-partial"][:2] == (2, 2)
    singles = [v for k, v in groups.items() if not k.startswith("g-")]
    assert sorted(v[:3] for v in singles) == [(1, 1, 0.0), (1, 1, 0.0)]
    judged = rows(client, "SELECT overall, length(step_rewards), task_completion FROM judgments "
                          "WHERE session_id = {s:String}", s=ids[0])[0]
    assert 0 < judged[0] <= 1 and judged[1] == 3 and judged[2] == 1.0
    assert count(client, "judgments", produced.later_ids) == 4


def test_replay_with_new_versions_adds_them_beside_the_old(stack: RunningStack, produced: Produced) -> None:
    every = produced.ids + produced.later_ids
    result = replay(stack, "--from", "beginning", "--judge", "heuristic@2", "--reward-version", "ruler-heuristic@2")
    assert (result["rescored"], result["judgments"], result["rewards"]) == (20, 20, 20)
    assert result["groups"] == 3 + 1 + 1 + 2  # full groups, g-later, the partial group, two singles
    client = stack.client()
    wait_for(lambda: count(client, "rewards", every, "reward_version = 'ruler-heuristic@2'") >= 20, timeout_s=60)
    wait_for(lambda: count(client, "judgments", every, "judge_version = '2'") >= 20, timeout_s=60)
    for version, judgments, rewards in (("1", 20, 20), ("2", 20, 20)):
        assert count(client, "judgments", every, f"judge_version = '{version}'") == judgments
        assert count(client, "rewards", every, f"reward_version = 'ruler-heuristic@{version}'") == rewards
    same = rows(client, """SELECT countIf(abs(a.total - b.total) < 1e-9 AND abs(a.advantage - b.advantage) < 1e-9)
        FROM rewards AS a INNER JOIN rewards AS b ON a.session_id = b.session_id
        WHERE a.reward_version = 'ruler-heuristic@1' AND b.reward_version = 'ruler-heuristic@2'""")[0][0]
    assert same == 20  # the same heuristic and the same groups give the same numbers under a new version


@pytest.mark.usefixtures("produced")
def test_second_identical_replay_adds_no_rows(stack: RunningStack) -> None:
    client = stack.client()
    before = rows(client, "SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)")[0]
    again = replay(stack, "--from", "beginning", "--judge", "heuristic@2", "--reward-version", "ruler-heuristic@2")
    assert (again["engine"], again["judgments"], again["rewards"]) == ("sql", 20, 20)  # re-scored...
    after = rows(client, "SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)")[0]
    assert after == before  # ...and not stored twice


def test_python_engine_emits_events_with_the_sql_engines_scores(stack: RunningStack, produced: Produced) -> None:
    every = produced.ids + produced.later_ids
    client = stack.client()
    first = replay(stack, "--from", "beginning", "--judge", "heuristic@py", "--reward-version", "ruler-heuristic@py",
                   "--engine", "python")
    assert (first["engine"], first["judgments"], first["rewards"], first["groups"]) == ("python", 20, 20, 7)
    wait_for(lambda: count(client, "rewards", every, "reward_version = 'ruler-heuristic@py'") >= 20, timeout_s=60)
    wait_for(lambda: count(client, "judgments", every, "judge_version = 'py'") >= 20, timeout_s=60)
    same_judgments = rows(client, """SELECT countIf(a.overall = b.overall AND a.step_rewards = b.step_rewards
        AND a.reasoning = b.reasoning) FROM judgments AS a INNER JOIN judgments AS b ON a.session_id = b.session_id
        WHERE a.judge_version = '2' AND b.judge_version = 'py'""")[0][0]
    same_rewards = rows(client, """SELECT countIf(a.total = b.total AND abs(a.advantage - b.advantage) < 1e-9
        AND a.reasoning = b.reasoning) FROM rewards AS a INNER JOIN rewards AS b ON a.session_id = b.session_id
        WHERE a.reward_version = 'ruler-heuristic@2' AND b.reward_version = 'ruler-heuristic@py'""")[0][0]
    assert (same_judgments, same_rewards) == (20, 20)
    before = rows(client, "SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)")[0]
    again = replay(stack, "--from", "beginning", "--judge", "heuristic@py", "--reward-version", "ruler-heuristic@py",
                   "--engine", "python")
    assert again["judgments"] == 20 and again["rewards"] == 20  # produced again...
    # ...and dropped by the sink. Barrier: a later replay's events share partitions (keyed by session)
    # with the repeated ones, so once all of its rows are in, the repeats have been processed too.
    replay(stack, "--from", "beginning", "--judge", "heuristic@barrier", "--reward-version", "ruler-heuristic@barrier",
           "--engine", "python")
    wait_for(lambda: count(client, "rewards", every, "reward_version = 'ruler-heuristic@barrier'") >= 20)
    wait_for(lambda: count(client, "judgments", every, "judge_version = 'barrier'") >= 20)
    after = rows(client, "SELECT (SELECT count() FROM judgments), (SELECT count() FROM rewards)")[0]
    assert after == (before[0] + 20, before[1] + 20)
    assert count(client, "judgments", every, "judge_version = 'py'") == 20


def test_replay_from_a_time_reads_only_later_trajectories(stack: RunningStack, produced: Produced) -> None:
    client = stack.client()
    recent = replay(stack, "--from", produced.cut.isoformat(), "--judge", "heuristic@recent")
    assert (recent["rescored"], recent["judgments"], recent["rewards"]) == (4, 4, 0)
    # start offsets came from the mirror: only the later records were read, none filtered out (the
    # topic is at-least-once: a trajectory the worker sent twice is read twice and dropped as a duplicate)
    assert (recent["read"] - recent["duplicates"], recent["skipped_before_since"]) == (4, 0)
    mirror = replay(stack, "--from", produced.cut.isoformat(), "--judge", "heuristic@mirror",
                    "--reward-version", "ruler-heuristic@mirror", "--source", "clickhouse")
    assert (mirror["rescored"], mirror["judgments"], mirror["rewards"], mirror["groups"]) == (4, 4, 4, 1)
    wait_for(lambda: count(client, "judgments", produced.later_ids, "judge_version = 'mirror'") >= 4)
    wait_for(lambda: count(client, "judgments", produced.later_ids, "judge_version = 'recent'") >= 4)
    assert count(client, "judgments", produced.ids, "judge_version IN ('recent', 'mirror')") == 0
    wait_for(lambda: count(client, "rewards", produced.later_ids, "reward_version = 'ruler-heuristic@mirror'") >= 4)
    bad = art(stack, "replay", "--from", "yesterday-ish", "--judge", "heuristic@9")
    assert (bad.returncode, bad.stderr) == (2, "error: --from must be an ISO date/time or 'beginning', not "
                                                "'yesterday-ish'\n")
    bad_judge = art(stack, "replay", "--from", "beginning", "--judge", "heuristic")
    assert (bad_judge.returncode, bad_judge.stderr) == (
        2, "error: invalid judge: --judge must be name@version, e.g. heuristic@2 (got 'heuristic')\n")


def test_views_answer_analyst_questions(stack: RunningStack, produced: Produced) -> None:
    client = stack.client()
    latest = rows(client, "SELECT session_id, reward_version FROM latest_rewards WHERE session_id IN "
                          "{ids:Array(String)}", ids=produced.ids)
    assert len(latest) == 16 and {v for _, v in latest} <= {"ruler-heuristic@2", "ruler-heuristic@barrier"}
    first = produced.ids[0]
    assert rows(client, "SELECT versions FROM latest_rewards WHERE session_id = {s:String}", s=first) == [(4,)]
    mirror = rows(client, "SELECT session_id, total FROM latest_rewards_of(version = 'ruler-heuristic@mirror') "
                          "ORDER BY session_id")
    assert [s for s, _ in mirror] == sorted(produced.later_ids)  # the mirror replay re-scored only the later runs
    assert mirror == rows(client, "SELECT session_id, total FROM rewards FINAL WHERE reward_version = "
                                  "'ruler-heuristic@mirror' ORDER BY session_id")
    shift = rows(client, "SELECT count(), max(abs(shift)) FROM judge_version_comparison("
                         "old_judge = 'heuristic@1', new_judge = 'heuristic@2')")[0]
    assert shift == (20, 0.0)
    assert rows(client, "SELECT count() FROM reward_version_comparison(old_version = 'ruler-heuristic@1', "
                        "new_version = 'ruler-heuristic@mirror')")[0][0] == 4
    by_day = rows(client, "SELECT sum(trajectories), uniqExact(agent_name) FROM reward_by_agent_day "
                          "WHERE reward_version = 'ruler-heuristic@1'")[0]
    assert by_day == (20, 5)
    outcomes = rows(client, "SELECT group_id, members, succeeded, success_rate FROM group_outcomes ORDER BY group_id")
    assert outcomes == [("g-a", 4, 4, 1.0), ("g-b", 4, 4, 1.0), ("g-c", 4, 4, 1.0), ("g-later", 4, 4, 1.0),
                        ("g-partial", 2, 2, 1.0)]
    all_steps = [s for sizes in (*GROUPS.values(), *PARTIAL.values(), *LATER.values()) for s in sizes] + SINGLES
    calls = {f"tool{t}": sum(1 for n in all_steps for i in range(n) if i % 3 == t) for t in range(3)}
    errors = {f"tool{t}": sum(1 for n in all_steps for i in range(n) if i % 3 == t and i % 7 == 6) for t in range(3)}
    tools = {tool: (c, e, round(r, 6)) for tool, c, e, r in rows(
        client, "SELECT tool, calls, errors, error_rate FROM tool_error_rates")}
    assert tools == {t: (calls[t], errors[t], round(errors[t] / calls[t], 6)) for t in calls}
    versions = {j for (j,) in rows(client, "SELECT judge FROM judge_versions")}
    assert {"heuristic@1", "heuristic@2", "heuristic@recent", "heuristic@mirror"} <= versions
    out = art(stack, "sql", "SELECT tool, calls FROM tool_error_rates ORDER BY tool", "--format", "csv")
    assert out.returncode == 0 and out.stdout.splitlines()[-3:] == [f"{t},{calls[t]}" for t in sorted(calls)]


@pytest.mark.usefixtures("produced")
def test_report_writes_a_self_contained_html_page(stack: RunningStack) -> None:
    out_file = stack.data_dir.parent / "report.html"
    out = art(stack, "report", "--out", str(out_file), "--from-version", "heuristic@1", "--to-version", "heuristic@2")
    assert out.returncode == 0, out.stdout + out.stderr
    html = out_file.read_text()
    assert html.count('<img src="data:image/png;base64,') == 4
    for title in ("Reward over time per agent", "Success rate per group", "Score shift", "Tool error rates"):
        assert title in html
    assert "heuristic@1" in html and "heuristic@2" in html and "g-partial" in html
    default = art(stack, "report", "--out", str(out_file.with_name("default.html")))
    assert default.returncode == 0, default.stdout + default.stderr
    assert '<img src="data:image/png;base64,' in out_file.with_name("default.html").read_text()


@pytest.mark.usefixtures("produced")
def test_member_arriving_after_its_group_was_scored_is_scored_alone(stack: RunningStack) -> None:
    late = asyncio.run(produce(stack, {"g-a": [4]}, [], offset=200))
    client = stack.client()
    wait_for(lambda: count(client, "rewards", late) >= 1, timeout_s=60)
    reward = rows(client, "SELECT group_id, group_size, advantage, reasoning FROM rewards "
                          "WHERE session_id = {s:String}", s=late[0])
    assert len(reward) == 1 and reward[0][:3] == ("g-a", 1, 0.0)
    assert reward[0][3].startswith("late member of group g-a")
    first_members = rows(client, "SELECT count(), any(group_size) FROM rewards WHERE group_id = 'g-a' AND "
                                 "reward_version = 'ruler-heuristic@1' AND session_id != {s:String}", s=late[0])
    assert first_members == [(4, 4)]  # the scored group was not scored again
