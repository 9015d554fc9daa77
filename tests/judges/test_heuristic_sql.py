"""The SQL heuristic judge and RULER give the Python judge's numbers, ids and texts (real chDB).

Trajectories are generated from a fixed seed to cover what the formulas branch on: errors and
recovery, repeated and switching tool calls, empty / whitespace-only / Unicode-space thoughts,
final answers vs Answer steps, criteria with padding and case, file criteria against file_write
inputs in every accepted form (and refused ones), statuses, timeouts, missing
sequence numbers, groups of 1 to 4 and session ids that need JSON escaping.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from config.settings import ArtConfig
from consumers.replay_model import ReplayRequest
from consumers.replay_sql import SqlReplay, run_sql_replay
from judges import HeuristicJudge, HeuristicRuler
from judges.heuristic_sql import PY_SPACE, py_strip
from schemas.codec import Codec
from schemas.models import ClosedBy, SessionStatus, TrajectoryCompleted
from schemas.registry import LocalRegistry
from tests.judges.builders import T0, answer, think, tool, trajectory

SPACES = ["", " ", "\t", "\u3000", "\xa0 ", "\n"]
# file_write inputs: JSON (string, number and missing content, bad JSON, no path), path-first-line forms
WRITES = ['{"path": "out/a.txt", "content": "475"}', ' {"path": " ./out/a.txt", "content": "475\\n\\n"} ',
          '{"path": "out/a.txt", "content": 475}', '{"path": "out/a.txt"}', '{"path": "out/a.txt", "content": "47',
          '{"content": "475"}', "out/a.txt\n475\n", "./out/a.txt\n476", "out/b.txt\nx y", "out/a.txt",
          "\u3000out/a.txt \n475", '{"path": "out/b.txt", "content": "x y"}', "out/a.txt\n 475"]
ODD_IDS = ['quote"d', "back\\slash", "slash/ed", "tab\there", "ctl\x01x", "ünï—cødé", "new\nline", "del\x7f"]


def random_trajectory(rng: random.Random, i: int, group_id: str | None) -> TrajectoryCompleted:
    steps = []
    for _ in range(rng.randint(0, 7)):
        pad = rng.choice(SPACES)
        kind = rng.random()
        if kind < 0.25:
            steps.append(tool("file_write", rng.choice(WRITES), error=rng.choice([None, None, "boom"])))
        elif kind < 0.6:
            name = rng.choice(["search", "Calc", "lookup"])
            thought = rng.choice(["", pad, f"use {name.upper()} now", "think harder"]) + pad
            steps.append(tool(name, rng.choice(["a", "b", " a "]), thought=thought,
                              error=rng.choice([None, None, "", "boom"])))
        elif kind < 0.8:
            steps.append(think(rng.choice(["", "hmm", pad])))
        else:
            steps.append(answer(rng.choice(["Paris", "paris!", "", f"{pad}London{pad}"]), thought=pad))
    session = f"s{i}-{ODD_IDS[i % len(ODD_IDS)]}" if i % 3 == 0 else f"s{i}"
    traj = trajectory(steps, session_id=session, group_id=group_id,
                      criteria=rng.choice([[], ["paris"], [" Paris ", "london"], ["  "], ["x", "y", "z"],
                                           ["= paris"], [" =London ", "= it is paris"], ["="],
                                           ["= paris", "file:out/a.txt = 475"], [" file: ./out/a.txt=  475 "],
                                           ["file:out/b.txt = x y"], ["file:out/a.txt"], ["FILE:out/a.txt = 475"],
                                           ["file: = 475"], ["file:out/a.txt = 476", "paris"]]),
                      final_answer=rng.choice([None, "", "It is PARIS", " \u2003 "]),
                      status=rng.choice([SessionStatus.succeeded, SessionStatus.failed, None]),
                      closed_by=rng.choice([ClosedBy.completed, ClosedBy.completed, ClosedBy.idle_timeout]))
    return traj.model_copy(update={"completed_at": T0 + timedelta(seconds=i),
                                   "missing_seqs": [2] if rng.random() < 0.1 else []})


def corpus(seed: int = 7) -> list[list[TrajectoryCompleted]]:
    """Groups (each scored together by both engines): sizes 1-4 plus ungrouped singletons."""
    rng = random.Random(seed)
    groups, i = [], 0
    for g in range(60):
        size = rng.randint(1, 4)
        groups.append([random_trajectory(rng, i + k, f"g{g}") for k in range(size)])
        i += size
    groups.extend([random_trajectory(rng, i + k, None)] for k in range(20))
    return groups


async def _batches(records: list[tuple[int, int, int, bytes]]) -> AsyncIterator[list[tuple[int, int, int, bytes]]]:
    for start in range(0, len(records), 50):
        yield records[start:start + 50]


def sql_replay(store: Any, records: list[tuple[int, int, int, bytes]], codec: Codec, **request: Any) -> Any:
    req = ReplayRequest(judge="heuristic@sql", reward_version="ruler-heuristic@sql", engine="sql", **request)
    return asyncio.run(run_sql_replay(SqlReplay(store, ArtConfig(), req, codec), _batches(records)))


def rows(store: Any, sql: str) -> dict[str, dict[str, Any]]:
    result = store.query(sql)
    return {r[0]: dict(zip(result.column_names, r, strict=True)) for r in result.result_rows}


def test_sql_judge_and_ruler_equal_the_python_ones(store: Any) -> None:
    groups = corpus()
    codec = Codec(LocalRegistry())
    trajs = [t for g in groups for t in g]
    records = [(3, i % 4, i, codec.encode("trajectories", t)) for i, t in enumerate(trajs)]
    result = sql_replay(store, records, codec)
    assert (result.read, result.rescored, result.judgments, result.rewards) == (len(trajs),) * 4
    assert result.groups == len(groups)

    judge = HeuristicJudge(version="sql")
    ruler = HeuristicRuler(reward_version="ruler-heuristic@sql")
    want_j = {t.session_id: judge.judge(t) for t in trajs}
    want_r = {r.session_id: r for g in groups for r in ruler.score_group(g)}
    got_j = rows(store, "SELECT session_id, * FROM judgments")
    got_r = rows(store, "SELECT session_id, * FROM rewards")
    assert set(got_j) == set(want_j) and set(got_r) == set(want_r)
    for sid, want in want_j.items():
        got = got_j[sid]
        for name in ("task_completion", "solution_quality", "efficiency", "tool_usage", "reasoning_coherence",
                     "error_recovery", "overall", "step_rewards", "reasoning", "event_id", "agent_name", "group_id"):
            assert got[name] == getattr(want, name), (sid, name)
        topic = ArtConfig().kafka.topics().trajectories.name
        assert (got["judge_name"], got["judge_version"], got["topic"]) == ("heuristic", "sql", topic)
    for sid, want in want_r.items():
        got = got_r[sid]
        for name in ("total", "success", "efficiency", "quality", "novelty", "confidence", "group_size",
                     "reasoning", "event_id"):
            assert got[name] == getattr(want, name), (sid, name)
        assert got["advantage"] == pytest.approx(want.advantage, abs=1e-9), sid
    index = {t.session_id: i for i, t in enumerate(trajs)}
    assert all((got_j[s]["log_epoch"], got_j[s]["partition"], got_j[s]["offset"]) == (3, index[s] % 4, index[s])
               for s in got_j)


def test_equal_totals_get_zero_advantage_and_a_group_of_one_too(store: Any) -> None:
    same = [trajectory([tool("search", "a", thought="search"), answer("Paris")], session_id=f"e{i}",
                       group_id="eq", criteria=["paris"]) for i in range(3)]
    alone = trajectory([answer("Paris")], session_id="alone", criteria=["paris"])
    codec = Codec(LocalRegistry())
    sql_replay(store, [(0, 0, i, codec.encode("t", t)) for i, t in enumerate([*same, alone])], codec)
    got = store.query("SELECT session_id, advantage, novelty, group_size, confidence FROM rewards ORDER BY session_id")
    assert got.result_rows == [("alone", 0.0, 0.0, 1, 0.5), ("e0", 0.0, 0.0, 3, 0.75), ("e1", 0.0, 0.0, 3, 0.75),
                               ("e2", 0.0, 0.0, 3, 0.75)]


def test_replay_counts_duplicates_old_records_and_garbage_and_adds_nothing_twice(store: Any) -> None:
    codec = Codec(LocalRegistry())
    trajs = [trajectory([answer("Paris")], session_id=f"d{i}", criteria=["paris"]).model_copy(
        update={"completed_at": T0 + timedelta(days=i)}) for i in range(4)]
    encoded = [codec.encode("t", t) for t in trajs]
    not_a_trajectory = codec.encode("t", judge_of(trajs[0]))
    corrupt = encoded[1][:5] + b"\xff\xff\xff"  # valid header, body ClickHouse cannot read
    records = [(0, 0, i, raw) for i, raw in enumerate(
        [*encoded, encoded[2], b"garbage", b"\x00\x7f\x7f\x7f\x7f body", not_a_trajectory, corrupt])]
    first = sql_replay(store, records, codec, since=T0 + timedelta(days=1))
    assert (first.read, first.undecodable, first.skipped_before_since, first.duplicates, first.rescored) == (
        9, 4, 1, 1, 3)
    second = sql_replay(store, records, codec, since=T0 + timedelta(days=1))
    assert second.rescored == 3
    assert store.query("SELECT count(), uniqExact(session_id) FROM judgments").result_rows == [(3, 3)]
    assert store.query("SELECT count(), uniqExact(session_id) FROM rewards").result_rows == [(3, 3)]


def judge_of(traj: TrajectoryCompleted) -> Any:
    return HeuristicJudge().judge(traj)


def test_py_space_class_is_exactly_python_whitespace(store: Any) -> None:
    spaces = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
    assert {ord(c) for c in spaces} == {9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0x85, 0xA0, 0x1680,
                                        *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
    assert PY_SPACE.startswith("[") and PY_SPACE.endswith("]")
    samples = [f"{spaces}x y{spaces}", "\u200bzero-width is not space\u200b", "", spaces, "\x00 keep \x00"]
    got = store.query(f"SELECT {py_strip('s')} FROM (SELECT arrayJoin({{s:Array(String)}}) AS s)",
                      parameters={"s": samples}).result_rows
    assert [r[0] for r in got] == [s.strip() for s in samples]


def test_stage_tables_of_an_abandoned_replay_are_dropped_by_the_next(store: Any) -> None:
    codec = Codec(LocalRegistry())
    leftover = "replay_stage_0123456789ab"
    store.command(f"CREATE TABLE {leftover} (x UInt8) ENGINE = Memory")
    replay = SqlReplay(store, ArtConfig(), ReplayRequest(judge="heuristic@z", engine="sql"), codec)
    replay._drop_abandoned(older_than_s=-60)  # "an hour ago" moved to the future: the table counts as old
    names = {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows}
    assert leftover not in names and "judgments" in names
