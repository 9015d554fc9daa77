"""Score parsing: each accepted form, and garbage rejected with the text in the error."""

from __future__ import annotations

import pytest

from judges import METRICS, ScoreParseError, parse_metric_scores, parse_score


@pytest.mark.parametrize(("text", "expected"), [
    ("7/10", 0.7),
    ("70%", 0.7),
    ("score: 0.7", 0.7),
    ("Score: 7", 0.7),
    ("0.7", 0.7),
    (" 0.7. ", 0.7),
    ('{"score": 0.7}', 0.7),
    ('{"Score": "7/10", "why": "fine"}', 0.7),
    ('Here you go:\n```json\n{"score": 7}\n```', 0.7),
    ("The score is 8/10 overall", 0.8),
    ("SCORE=85%", 0.85),
    ("score: 1", 1.0),
    ("Score: 95", 0.95),
    ("0", 0.0),
])
def test_accepts(text: str, expected: float) -> None:
    assert parse_score(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("great job", "cannot read a score (no score found): 'great job'"),
    ("", "cannot read a score (no score found): ''"),
    ('{"rating": 5}', "cannot read a score (JSON object has no 'score' key): '{\"rating\": 5}'"),
    ("11/10", "fraction 11/10 is not within 0..1"),
    ("score: 250", "score 250.0 is above 100"),
    ('{"score": true}', "score True is a boolean"),
    ("-0.5", "score -0.5 is not a non-negative number"),
    ('{"score": 0.7', "no score found"),
    ("about 7 out of ten", "no score found"),
])
def test_rejects_with_text(text: str, message: str) -> None:
    with pytest.raises(ScoreParseError) as info:
        parse_score(text)
    assert message in str(info.value)
    assert info.value.text == text


def test_long_text_is_shortened_in_message() -> None:
    with pytest.raises(ScoreParseError, match=r"\[300 more chars\]"):
        parse_score("x" * 500)


def test_metric_scores_from_json_and_lines() -> None:
    doc = ('{"task_completion": 0.8, "solution_quality": "7/10", "efficiency": 9, "tool_usage": {"score": 0.5},'
           ' "reasoning_coherence": 1, "error_recovery": "100%", "reasoning": "ok"}')
    assert parse_metric_scores(doc) == pytest.approx({"task_completion": 0.8, "solution_quality": 0.7,
                                                      "efficiency": 0.9, "tool_usage": 0.5,
                                                      "reasoning_coherence": 1.0, "error_recovery": 1.0})
    lines = "\n".join(f"{name}: {i}/5" for i, name in enumerate(METRICS))
    assert parse_metric_scores(lines) == pytest.approx({n: i / 5 for i, n in enumerate(METRICS)})


def test_metric_scores_missing_metric_is_named() -> None:
    with pytest.raises(ScoreParseError, match="JSON object lacks error_recovery"):
        parse_metric_scores('{"task_completion": 1, "solution_quality": 1, "efficiency": 1, "tool_usage": 1,'
                            ' "reasoning_coherence": 1}')
    with pytest.raises(ScoreParseError, match="no score for solution_quality"):
        parse_metric_scores("task_completion: 0.5")
