"""Heuristic judge: every metric checked against numbers worked out by hand in the comments."""

from __future__ import annotations

import json
import uuid

import pytest

from config.settings import JudgeConfig
from judges import DEFAULT_WEIGHTS, HeuristicJudge, Judge, JudgeWeights, MetricScores, judgment_id
from judges.contract import ID_NAMESPACE
from schemas.models import ClosedBy, SessionStatus
from tests.judges.builders import answer, think, tool, trajectory


def mixed_run():  # type: ignore[no-untyped-def]
    return trajectory([
        tool("search", "capital of France", thought="I will use search"),
        tool("search", "capital of France", thought="retry search", error="timeout"),
        tool("wiki", "France", thought="check with wiki"),
        tool("search", "Paris population"),
        think("think it over"),
        answer("The capital is Paris.", thought="done"),
    ], criteria=["paris", "France"], final_answer="The capital is Paris.")


def test_mixed_run_metrics_by_hand() -> None:
    j = HeuristicJudge().judge(mixed_run())
    # criteria: "paris" found (case-insensitive), "France" not -> 1/2
    assert j.task_completion == 0.5
    # estimate = max(3, 2*2+1) = 5; 6 steps -> 5/6
    assert j.efficiency == pytest.approx(5 / 6)
    # 4 calls, 3 distinct (tool, input) -> 1 redundant; tools s,s,w,s: 2 switches, minimum 1 -> thrash (2-1)/3
    assert j.tool_usage == pytest.approx((1 - 1 / 4) * (1 - 0.5 / 3))
    # the one error (step 2) is followed by clean steps and the session succeeded
    assert j.error_recovery == 1.0
    # thoughts 5/6, tool named in 3 of 4 call thoughts, answer present
    assert j.reasoning_coherence == pytest.approx((5 / 6 + 3 / 4 + 1) / 3)
    # answer present: 0.5*completion + 0.5*(3 of 4 calls without error)
    assert j.solution_quality == pytest.approx(0.5 * 0.5 + 0.5 * 0.75)
    expected = 0.4 * 0.5 + 0.2 * 0.625 + 0.2 * (5 / 6) + 0.1 * 0.625 + 0.1 * (31 / 36)
    assert j.overall == pytest.approx(expected)
    assert j.overall == pytest.approx(0.6402777777)
    # ok call, error, ok call, call without thought, think, answer (= completion)
    assert j.step_rewards == [1.0, 0.0, 1.0, 0.5, 1.0, 0.5]
    assert (j.judge_name, j.judge_version) == ("heuristic", "1")
    assert "1/2 criteria matched" in j.reasoning


def test_failed_run_without_answer() -> None:
    t = trajectory([tool("search", "x", error="boom"), tool("search", "x", error="boom")],
                   status=SessionStatus.failed)
    j = HeuristicJudge().judge(t)
    assert j.task_completion == 0.0  # no criteria and failed
    assert j.efficiency == 1.0  # estimate 3 >= 2 steps
    assert j.tool_usage == 0.5  # 1 of 2 calls redundant, no switches
    assert j.error_recovery == 0.0  # session failed: nothing recovered
    assert j.reasoning_coherence == 0.0
    assert j.solution_quality == 0.0
    # quality term 0 regardless of modulation: 0.2*1 + 0.1*0.5
    assert j.overall == pytest.approx(0.25)
    assert j.step_rewards == [0.0, 0.0]


def test_no_criteria_succeeded_is_complete_and_partial_recovery() -> None:
    t = trajectory([tool("calc", "1+", error="syntax"), tool("calc", "1+1", thought="calc again"),
                    tool("calc", "2+2", error="late")], final_answer="2")
    m = HeuristicJudge().judge(t)
    assert m.task_completion == 1.0
    assert m.error_recovery == 0.5  # first error recovered by step 2, last one has no later step


def test_no_steps() -> None:
    j = HeuristicJudge().judge(trajectory([], status=None, closed_by=ClosedBy.idle_timeout))
    assert (j.efficiency, j.task_completion, j.tool_usage, j.error_recovery) == (0.0, 0.0, 1.0, 1.0)
    assert j.step_rewards == []


def test_answer_action_counts_when_final_answer_missing() -> None:
    t = trajectory([answer("Paris")], criteria=["paris"], final_answer=None)
    assert HeuristicJudge().judge(t).task_completion == 1.0


def test_step_order_comes_from_seq() -> None:
    t = mixed_run()
    shuffled = t.model_copy(update={"steps": list(reversed(t.steps))})
    a, b = HeuristicJudge().judge(t), HeuristicJudge().judge(shuffled)
    assert a.model_dump(exclude={"judged_at"}) == b.model_dump(exclude={"judged_at"})


def test_event_id_is_deterministic_per_version() -> None:
    t = mixed_run()
    first, again = HeuristicJudge().judge(t), HeuristicJudge().judge(t)
    assert first.event_id == again.event_id == judgment_id("s1", "heuristic", "1")
    assert first.event_id == uuid.uuid5(ID_NAMESPACE, json.dumps(["s1", "heuristic", "1"]))
    assert HeuristicJudge(version="2").judge(t).event_id != first.event_id


def test_weights_combine_and_error_recovery_modulates_quality() -> None:
    s = MetricScores(task_completion=1, solution_quality=0.8, efficiency=0.5, tool_usage=1,
                     reasoning_coherence=1, error_recovery=0)
    assert JudgeWeights().values == DEFAULT_WEIGHTS == (0.4, 0.2, 0.2, 0.1, 0.1)
    assert JudgeWeights().combine(s) == pytest.approx(0.4 + 0.2 * 0.8 * 0.5 + 0.2 * 0.5 + 0.1 + 0.1)
    assert JudgeWeights().combine(s.model_copy(update={"error_recovery": 1.0})) == pytest.approx(0.86)
    six = JudgeWeights(values=(0.3, 0.2, 0.2, 0.1, 0.1, 0.1))
    assert six.combine(s) == pytest.approx(0.3 + 0.16 + 0.1 + 0.1 + 0.1 + 0.0)
    # weights not summing to 1 are normalised
    assert JudgeWeights(values=(4, 2, 2, 1, 1)).combine(s) == pytest.approx(JudgeWeights().combine(s))
    with pytest.raises(ValueError, match="need 5 or 6 weights"):
        JudgeWeights(values=(1, 1))


def test_from_config_and_protocol() -> None:
    judge = HeuristicJudge.from_config(JudgeConfig(version="7", weights=[1, 0, 0, 0, 0]))
    assert isinstance(judge, Judge)
    j = judge.judge(mixed_run())
    assert (j.judge_version, j.overall) == ("7", 0.5)


@pytest.mark.parametrize(("writes", "met"), [
    (['{"path": "out/a.txt", "content": "475"}'], True),
    (['{"path": " ./out/a.txt", "content": "475\\n\\n"}'], True),  # path padding, ./ and trailing newlines aside
    (['{"path": "out/a.txt", "content": 475}'], True),  # a number is written as its JSON
    (["out/a.txt\n475\n"], True),  # path on the first line, content after it
    (["out/a.txt\n 475"], False),  # leading space is content
    (["out/a.txt\n475", "out/a.txt\n476"], False),  # the last write wins
    (["out/a.txt\n476", "out/b.txt\n1", "./out/a.txt\n475"], True),
    (['{"path": "out/a.txt", "content": "47'], False),  # the tool refused it: it wrote nothing
    (["out/b.txt\n475"], False),
    ([], False),
])
def test_a_file_criterion_is_met_by_the_last_write_to_its_path(writes: list[str], met: bool) -> None:
    steps = [tool("file_write", w) for w in writes] + [tool("file_write", "out/a.txt\n475", error="disk full"),
                                                       answer("475")]
    t = trajectory(steps, criteria=["= 475", " file:./out/a.txt =  475 "], final_answer="475")
    j = HeuristicJudge().judge(t)
    assert j.task_completion == (1.0 if met else 0.5)
    assert f"{2 if met else 1}/2 criteria matched" in j.reasoning


def test_a_run_that_answers_without_writing_the_file_is_half_done() -> None:
    """The suite's chain tasks ask for a file and an answer: answering alone is not success."""
    t = trajectory([tool("file_read", "data/a.txt"), tool("calculator", "449 + 26"), answer("475")],
                   criteria=["= 475", "file:out/sum.txt = 475"], final_answer="475")
    assert HeuristicJudge().judge(t).task_completion == 0.5
