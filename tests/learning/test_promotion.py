"""Promotion by outcome: a model becomes champion only when its evaluated task success beats the
champion's by the margin; held-out loss never decides."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.registry import (
    ModelRecord,
    _write,
    champion,
    decide_promotion,
    promote,
    promote_if_better,
    record_metrics,
    register_base_model,
)


def _record(model_id: str, spec: str = "general", **metrics: float) -> ModelRecord:
    now = datetime.now(UTC)
    return ModelRecord(model_id=model_id, name=model_id, base_model="/b", objective="sft", specialization=spec,
                       window_id="w", path=f"/m/{model_id}", metrics=metrics, created_at=now, updated_at=now)


def test_rule() -> None:
    champ = _record("c", eval_success=0.50, eval_missions=48)
    cases = {
        "no evaluated task success yet": _record("a", eval_loss=0.1),  # a better loss alone is not enough
        "does not beat the champion's 0.500 by 0.050": _record("b", eval_success=0.54, eval_missions=48),
        "evaluated on different mission sets (40.0 vs 48.0 missions)": _record("d", eval_success=0.9,
                                                                              eval_missions=40),
    }
    for reason, candidate in cases.items():
        decision = decide_promotion(candidate, champ, 0.05)
        assert not decision.promoted and reason in decision.reason, decision.reason
    worse = decide_promotion(_record("w", eval_success=0.3, eval_missions=48), champ, 0.0)
    assert not worse.promoted and (worse.candidate, worse.champion, worse.champion_id) == (0.3, 0.5, "c")
    tie = decide_promotion(_record("t", eval_success=0.5, eval_missions=48), champ, 0.0)
    assert not tie.promoted  # equal is not better, even with no margin
    better = decide_promotion(_record("g", eval_success=0.55, eval_missions=48), champ, 0.05)
    assert better.promoted and "beats the champion's 0.500 by at least 0.050" in better.reason
    unevaluated_champ = decide_promotion(_record("g", eval_success=0.9, eval_missions=48), _record("c"), 0.05)
    assert not unevaluated_champ.promoted and "art eval c" in unevaluated_champ.reason
    assert decide_promotion(_record("g", eval_success=0.1, eval_missions=48), None, 0.05).promoted


def test_store_refuses_a_worse_model_and_promotes_a_better_one(store: Any, tmp_path: Path) -> None:
    register_base_model(store, model_id="base", name="base", path=tmp_path)
    promote(store, "base")
    record_metrics(store, "base", {"eval_success": 0.40, "eval_missions": 48.0})
    for model_id in ("worse", "better", "research-1"):
        _write(store, _record(model_id, spec="research" if model_id.startswith("research") else "general"))

    worse = promote_if_better(store, record_metrics(store, "worse", {"eval_success": 0.30, "eval_missions": 48.0,
                                                                     "eval_loss": 0.01}), 0.05)
    assert not worse.promoted and champion(store).model_id == "base"  # type: ignore[union-attr]

    better = promote_if_better(store, record_metrics(store, "better", {"eval_success": 0.46, "eval_missions": 48.0}),
                               0.05)
    assert better.promoted and champion(store).model_id == "better"  # type: ignore[union-attr]
    assert not [m for m in [champion(store, "research")] if m is not None]

    # a specialisation with no champion of its own must beat the general champion
    research = record_metrics(store, "research-1", {"eval_success": 0.47, "eval_missions": 48.0})
    refused = promote_if_better(store, research, 0.05)
    assert not refused.promoted and refused.champion_id == "better"
    research = record_metrics(store, "research-1", {"eval_success": 0.60, "eval_missions": 48.0})
    assert promote_if_better(store, research, 0.05).promoted
    assert champion(store, "research").model_id == "research-1"  # type: ignore[union-attr]
    assert champion(store).model_id == "better"  # type: ignore[union-attr]
