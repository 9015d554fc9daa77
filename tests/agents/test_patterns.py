"""Success patterns extracted from, stored in and retrieved from a real chDB store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agents.patterns import (
    SuccessPattern,
    extract_patterns,
    find_similar_patterns,
    keywords,
    load_patterns,
    rank_patterns,
    refresh_patterns,
    store_patterns,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def trajectory(session_id: str, objective: str, status: str = "succeeded", answer: str = "391") -> list[Any]:
    return [session_id, "solver", objective, answer, status, "completed", T0, T0 + timedelta(seconds=5), 3, 90,
            ["calculator"], 0]


TRAJ_COLS = ["session_id", "agent_name", "objective", "final_answer", "status", "closed_by", "started_at",
             "completed_at", "step_count", "total_tokens", "tools_used", "error_count"]
STEP_COLS = ["session_id", "seq", "step_number", "agent_name", "action_kind", "tool", "action_text", "action_input",
             "tool_result", "error", "timestamp"]
REWARD_COLS = ["session_id", "agent_name", "reward_version", "total", "success", "efficiency", "quality", "novelty",
               "confidence", "advantage", "assigned_at"]


def step(session_id: str, seq: int, kind: str, tool: str = "", text: str = "", error: str | None = None) -> list[Any]:
    return [session_id, seq, seq, "solver", kind, tool, text, text, None if error else "ok", error,
            T0 + timedelta(seconds=seq)]


def reward(session_id: str, total: float, version: str = "ruler@1", minutes: int = 0) -> list[Any]:
    return [session_id, "solver", version, total, total, total, total, 0.0, 0.9, 0.0, T0 + timedelta(minutes=minutes)]


def seed(store: Any) -> None:
    """good: high reward; dup: high reward, rows inserted twice; low: low reward; failed: high reward, failed;
    rescored: high under an old reward version, low under the newer one."""
    trajectories = [trajectory("good", "Multiply 17 by 23 with the calculator"),
                    trajectory("dup", "Compute the product of 12 and 11"),
                    trajectory("low", "Multiply 5 by 6"),
                    trajectory("failed", "Multiply 8 by 9", status="failed", answer=""),
                    trajectory("rescored", "Multiply 2 by 3")]
    steps = [step("good", 1, "use_tool", "lookup", "multiplication rules", error="no lines match"),
             step("good", 2, "use_tool", "calculator", "17*23"),
             step("good", 3, "answer", "", "391"),
             step("dup", 1, "think", "", "plan"),
             step("dup", 2, "use_tool", "calculator", "12*11"),
             step("dup", 3, "use_tool", "file_write", "result.txt"),
             step("dup", 4, "answer", "", "132"),
             step("low", 1, "use_tool", "calculator", "5*6"),
             step("failed", 1, "use_tool", "calculator", "8*9"),
             step("rescored", 1, "use_tool", "calculator", "2*3")]
    rewards = [reward("good", 0.92), reward("dup", 0.85), reward("low", 0.3), reward("failed", 0.95),
               reward("rescored", 0.9, minutes=0), reward("rescored", 0.2, version="ruler@2", minutes=10)]
    store.insert("trajectories", trajectories, column_names=TRAJ_COLS)
    store.insert("steps", steps, column_names=STEP_COLS)
    store.insert("rewards", rewards, column_names=REWARD_COLS)
    # redelivered copies: new inserts of the same keys (different parts) must not count twice
    dup_steps = [s for s in steps if s[0] == "dup"]
    store.insert("trajectories", [trajectories[1]], column_names=TRAJ_COLS, settings={"insert_deduplicate": 0})
    store.insert("steps", dup_steps, column_names=STEP_COLS, settings={"insert_deduplicate": 0})
    store.insert("rewards", [rewards[1]], column_names=REWARD_COLS, settings={"insert_deduplicate": 0})


def test_extract_keeps_high_reward_succeeded_runs(store: Any) -> None:
    seed(store)
    patterns = extract_patterns(store, min_reward=0.7)
    assert [p.session_id for p in patterns] == ["good", "dup"]
    good, dup = patterns
    assert good.actions == ["calculator: 17*23"]  # the failed lookup is not a successful action
    assert dup.actions == ["calculator: 12*11", "file_write: result.txt"]  # duplicates collapsed
    assert good.reward == 0.92 and good.reward_version == "ruler@1"
    assert good.summary == "solved in 3 steps using calculator; final answer: 391"
    assert good.keywords == ["17", "23", "calculator", "multiply"]
    # "rescored": its latest reward (ruler@2, 0.2) decides; asked for ruler@1 alone, its 0.9 counts
    by_v1 = extract_patterns(store, min_reward=0.7, reward_version="ruler@1")
    assert [(p.session_id, p.reward) for p in by_v1] == [("good", 0.92), ("rescored", 0.9), ("dup", 0.85)]
    assert extract_patterns(store, min_reward=0.99) == []


def test_store_is_idempotent_and_retrieval_ranks_by_similarity(store: Any) -> None:
    seed(store)
    assert refresh_patterns(store, min_reward=0.7) == 2
    assert refresh_patterns(store, min_reward=0.7) == 2  # again: replaces, never adds
    loaded = load_patterns(store)
    assert [p.session_id for p in loaded] == ["good", "dup"]
    count = store.query("SELECT count() FROM success_patterns FINAL").result_rows[0][0]
    assert count == 2

    similar = find_similar_patterns(store, "Multiply 41 by 7 using the calculator")
    assert [s.pattern.session_id for s in similar] == ["good"]
    assert 0.3 < similar[0].similarity <= 1.0
    product = find_similar_patterns(store, "What is the product of 12 and 13?", min_similarity=0.05)
    assert product[0].pattern.session_id == "dup"
    assert find_similar_patterns(store, "Write a poem about autumn leaves") == []


def test_keywords_and_ranking_are_deterministic() -> None:
    assert keywords("What is the capital of France? The CAPITAL!") == ["capital", "france"]
    patterns = [SuccessPattern(session_id=s, objective=o, reward=r, keywords=keywords(o), actions=[s])
                for s, o, r in [("a", "capital of France", 0.8), ("b", "capital of France", 0.9),
                                ("c", "population of France", 0.99), ("d", "bake bread", 1.0)]]
    ranked = rank_patterns("What is the capital of France?", patterns, k=3)
    assert [r.pattern.session_id for r in ranked] == ["b", "a", "c"]  # equal similarity: higher reward first
    assert ranked[0].similarity == ranked[1].similarity == 1.0
    assert ranked[2].similarity < 0.5
    assert rank_patterns("What is the capital of France?", list(reversed(patterns)), k=3) == ranked
    assert rank_patterns("", patterns) == [] and rank_patterns("capital", []) == []


def test_store_patterns_writes_rows(store: Any) -> None:
    pattern = SuccessPattern(session_id="x", objective="Sum numbers", actions=["calculator: 1+2"], reward=0.8,
                             keywords=keywords("Sum numbers"))
    assert store_patterns(store, [pattern]) == 1 and store_patterns(store, []) == 0
    assert load_patterns(store) == [pattern]
    assert load_patterns(store, min_reward=0.9) == []


def test_runs_that_did_the_same_are_one_pattern() -> None:
    same = [SuccessPattern(session_id=s, objective="capital of France", reward=r, actions=["lookup: france"],
                           keywords=keywords("capital of France")) for s, r in [("a", 0.8), ("b", 0.9), ("c", 0.9)]]
    other = SuccessPattern(session_id="d", objective="capital of France", reward=0.7, actions=["search: paris"],
                           keywords=keywords("capital of France"))
    ranked = rank_patterns("What is the capital of France?", [*same, other], k=3)
    assert [r.pattern.session_id for r in ranked] == ["b", "d"]  # the best of the three twins, then the other
