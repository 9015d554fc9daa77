"""LLM RULER against a real scripted endpoint: mapping, dedupe, retries, cache."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from judges import ChatClient, JudgeCache, LLMRuler, RulerResponseError
from tests.judges.llm_server import ScriptedLLM
from tests.judges.test_ruler_heuristic import good, poor


def scores(*items: tuple[str, float]) -> str:
    return json.dumps({"scores": [{"trajectory_id": i, "explanation": f"about {i}", "score": s} for i, s in items]})


def make_ruler(llm: ScriptedLLM, **kw: Any) -> LLMRuler:
    return LLMRuler(ChatClient(llm.base_url, "judge-model", timeout_s=5), **kw)


def test_group_scores_mapping_and_dedupe(llm: ScriptedLLM) -> None:
    llm.script(scores(("t1", 0.9), ("t2", -0.2)))
    a, b, c = make_ruler(llm).score_group([good("a"), good("b"), poor("c")])
    # a and b render identically -> one label t1, equal scores; c is t2, clamped to 0
    assert (a.total, b.total, c.total) == (0.9, 0.9, 0.0)
    assert (a.quality, c.quality) == (0.9, 0.0)
    # heuristic components are kept
    assert (a.success, a.efficiency, a.novelty, c.success, c.novelty) == (1.0, 1.0, 0.0, 0.0, 1.0)
    std = math.sqrt((0.3 ** 2 * 2 + 0.6 ** 2) / 3)  # mean 0.6
    assert a.advantage == pytest.approx(0.3 / (std + 1e-6))
    assert c.advantage == pytest.approx(-0.6 / (std + 1e-6))
    assert a.reasoning == "rank 1/3: about t1" and c.reasoning == "rank 3/3: about t2"
    assert {r.reward_version for r in (a, b, c)} == {"ruler-llm@1"}
    [req] = llm.requests
    user = req["body"]["messages"][1]["content"]
    assert user.count("Objective:") == 1
    assert '<trajectory id="t1">' in user and '<trajectory id="t2">' in user and "t3" not in user


def test_wrong_count_then_retry_succeeds(llm: ScriptedLLM) -> None:
    llm.script(scores(("t1", 0.4)), scores(("t1", 0.4), ("t2", 0.6)))
    rewards = make_ruler(llm).score_group([good("a"), poor("c")])
    assert [r.total for r in rewards] == [0.4, 0.6]
    assert len(llm.requests) == 2
    correction = llm.requests[1]["body"]["messages"][-1]["content"]
    assert "1 scores for 2 trajectories" in correction and "exactly 2 entries" in correction


def test_malformed_json_then_retry_succeeds(llm: ScriptedLLM) -> None:
    llm.script('{"scores": [{"trajectory_id": "t1", "score": 0.4},', scores(("t1", 0.5), ("t2", 0.5)))
    rewards = make_ruler(llm).score_group([good("a"), poor("c")])
    assert [r.total for r in rewards] == [0.5, 0.5]
    assert [r.advantage for r in rewards] == [0.0, 0.0]  # a tie
    assert "not valid JSON" in llm.requests[1]["body"]["messages"][-1]["content"]


def test_retries_exhausted(llm: ScriptedLLM) -> None:
    llm.script(scores(("t1", 0.4)), scores(("t1", 0.4), ("t9", 0.2)), scores(("t1", 1.0)))
    with pytest.raises(RulerResponseError, match="gave up after 2 attempts") as info:
        make_ruler(llm, max_retries=1).score_group([good("a"), poor("c")])
    assert "trajectory ids ['t1', 't9'] do not match ['t1', 't2']" in str(info.value)
    assert len(llm.requests) == 2


def test_schema_violation_named(llm: ScriptedLLM) -> None:
    llm.script('{"scores": [{"trajectory_id": "t1"}]}')
    with pytest.raises(RulerResponseError, match=r"schema at scores\.0\.score: Field required"):
        make_ruler(llm, max_retries=0).score_group([good("a")])


def test_cache_and_order_independence(llm: ScriptedLLM) -> None:
    llm.script(scores(("t1", 0.8), ("t2", 0.3)))
    ruler = make_ruler(llm, cache=JudgeCache())
    first = ruler.score_group([good("a"), poor("c")])
    again = ruler.score_group([poor("c"), good("a")])
    assert len(llm.requests) == 1
    assert {r.session_id: r.total for r in first} == {r.session_id: r.total for r in again} == {"a": 0.8, "c": 0.3}
    assert {r.event_id for r in first} == {r.event_id for r in again}


async def test_async_group(llm: ScriptedLLM) -> None:
    llm.script("not json at all", scores(("t1", 0.7)))
    [r] = await make_ruler(llm).ascore_group([good("a")])
    assert (r.total, r.advantage, r.group_size) == (0.7, 0.0, 1)
    assert len(llm.requests) == 2
    assert await make_ruler(llm).ascore_group([]) == []
