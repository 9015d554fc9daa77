"""Heuristic RULER: components, totals, advantages and novelty worked out by hand."""

from __future__ import annotations

import json
import math
import uuid

import pytest

from config.settings import load_config
from judges import RULER_WEIGHTS, HeuristicRuler, JudgeError, Ruler, advantages, build_ruler, reward_id
from judges.contract import ID_NAMESPACE
from schemas.models import ClosedBy, SessionStatus
from tests.judges.builders import answer, tool, trajectory


def good(session_id: str):  # type: ignore[no-untyped-def]
    return trajectory([tool("calc", "6*7", thought="use calc", result="42"), answer("42", thought="answer")],
                      session_id=session_id, criteria=["42"], final_answer="42", group_id="g")


def poor(session_id: str = "c"):  # type: ignore[no-untyped-def]
    return trajectory([tool("search", "6*7", thought="use search", result="?"),
                       tool("search", "6*7", thought="use search again", result="?"),
                       answer("41", thought="guess")],
                      session_id=session_id, criteria=["42"], final_answer="41", status=SessionStatus.failed,
                      group_id="g")


def test_group_of_three_by_hand() -> None:
    rewards = HeuristicRuler().score_group([good("a"), good("b"), poor("c")])
    a, b, c = rewards
    # a: every metric 1 -> success 1, efficiency 1 (estimate 3 >= 2 steps), quality 1; same calls as b -> novelty 0
    assert (a.success, a.efficiency, a.quality, a.novelty) == (1.0, 1.0, 1.0, 0.0)
    assert a.total == pytest.approx(0.9)
    assert b.total == a.total and b.novelty == 0.0
    # c: criterion missed -> 0; 3 steps vs 3 -> 1; calls shared with nobody -> novelty 1; quality = the judge's
    # overall under the default weights: 0.4*0 + 0.2*(quality 0.5 * (0.5 + 0.5*recovery 1)) + 0.2*1
    # + 0.1*(tool usage 0.5) + 0.1*(coherence 1) = 0.45
    assert (c.success, c.efficiency, c.novelty) == (0.0, 1.0, 1.0)
    assert c.quality == pytest.approx(0.45)
    assert c.total == pytest.approx(0.2 + 0.3 * 0.45 + 0.1)
    std = math.sqrt(((0.155 ** 2) * 2 + 0.31 ** 2) / 3)  # mean 0.745
    assert a.advantage == pytest.approx(0.155 / (std + 1e-6))
    assert c.advantage == pytest.approx(-0.31 / (std + 1e-6))
    assert sum(r.advantage for r in rewards) == pytest.approx(0.0, abs=1e-9)
    assert all(r.confidence == 0.75 and r.group_size == 3 and r.group_id == "g" for r in rewards)
    assert all(r.reward_version == "ruler-heuristic@1" for r in rewards)
    assert a.reasoning.startswith("rank 1/3") and c.reasoning.startswith("rank 3/3")
    assert a.event_id == reward_id("a", "ruler-heuristic@1") == uuid.uuid5(
        ID_NAMESPACE, json.dumps(["a", "ruler-heuristic@1"]))


def test_judge_weights_flow_into_rewards() -> None:
    """A judge version with other weights is another quality, so other rewards (not only other judgments)."""
    group = [good("a"), poor("c")]
    before = HeuristicRuler().score_group(group)
    config = load_config(environ={"ART_JUDGE_WEIGHTS": "0.1,0.1,0.1,0.1,0.6", "ART_JUDGE_VERSION": "2",
                                  "ART_JUDGE_REWARD_VERSION": "ruler-heuristic@2"})
    after = build_ruler(config).score_group(group)
    # c under (0.1, 0.1, 0.1, 0.1, 0.6): 0.1*0 + 0.1*0.5 + 0.1*1 + 0.1*0.5 + 0.6*1 = 0.8
    assert after[1].quality == pytest.approx(0.8) and before[1].quality == pytest.approx(0.45)
    assert after[1].total == pytest.approx(0.2 + 0.3 * 0.8 + 0.1)
    # a: every metric 1, so any weights give quality 1; calls unlike c's -> novelty 1
    assert after[0].total == before[0].total == pytest.approx(1.0)
    assert {r.reward_version for r in after} == {"ruler-heuristic@2"}


def test_weights_documented() -> None:
    assert RULER_WEIGHTS == {"success": 0.4, "efficiency": 0.2, "quality": 0.3, "novelty": 0.1}


def test_group_of_one_and_incomplete() -> None:
    lone = poor().model_copy(update={"closed_by": ClosedBy.idle_timeout})
    [r] = HeuristicRuler().score_group([lone])
    assert (r.advantage, r.novelty, r.group_size) == (0.0, 0.0, 1)
    assert r.confidence == 0.25  # 0.5 for one trajectory, halved for the timeout


def test_identical_trajectories_tie_with_zero_advantage() -> None:
    rewards = HeuristicRuler().score_group([good("a"), good("b")])
    assert rewards[0].total == rewards[1].total
    assert [r.advantage for r in rewards] == [0.0, 0.0]
    assert [r.novelty for r in rewards] == [0.0, 0.0]


def test_duplicates_dropped_and_order_does_not_matter() -> None:
    forward = HeuristicRuler().score_group([good("a"), good("a"), poor("c")])
    backward = HeuristicRuler().score_group([poor("c"), good("a")])
    assert [r.session_id for r in forward] == ["a", "c"]

    def key(rs):  # type: ignore[no-untyped-def]
        return {r.session_id: r.model_dump(exclude={"assigned_at"}) for r in rs}

    assert key(forward) == key(backward)
    assert HeuristicRuler().score_group([]) == []


def test_mixed_groups_refused() -> None:
    other = good("z").model_copy(update={"group_id": "h"})
    with pytest.raises(JudgeError, match="must share one group_id"):
        HeuristicRuler().score_group([good("a"), other])


def test_advantages_formula_and_protocol() -> None:
    assert advantages([]) == []
    assert advantages([0.3]) == [0.0]
    assert advantages([1.0, 0.0]) == pytest.approx([0.5 / (0.5 + 1e-6), -0.5 / (0.5 + 1e-6)])
    assert isinstance(HeuristicRuler(), Ruler)
