"""One `art loop` round end to end on a running stack: the champion's runs are judged, a LoRA adapter is
really trained (tiny config-built model) on the own-lineage, reward-filtered window, evaluated through
the server, promoted by outcome, and the server's `champion` then answers with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.suite import build_suite
from learning.cli import run_loop
from learning.loop import LoopSettings
from tests.ingest.stack import RunningStack
from tests.learning.support import StandIn, oracle, wrong
from trainer.registry import champion, get_model, list_models, promote, register_base_model
from trainer.runs import open_store
from trainer.windows import WindowFilter, pull_window

pytestmark = [pytest.mark.slow, pytest.mark.train]
BASE = "base-tiny"


def test_one_round_trains_evaluates_promotes_and_hot_loads(tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("torch")
    missions = build_suite("train") + build_suite("heldout", per_family=1)

    def policy(model: str):  # type: ignore[no-untyped-def]
        # the base solves arithmetic only; any adapter trained in this test solves everything
        if model == BASE:
            return lambda m, step: oracle(m, step) if m.family == "arith" else wrong(m, step)
        return oracle

    with RunningStack(tmp_path / "data") as stack:
        cfg = stack.cfg
        client = open_store(cfg)
        register_base_model(client, model_id=BASE, name="tiny", path=tiny_model)
        promote(client, BASE)

        def names() -> dict[str, str]:
            current = champion(client)
            return {"base": BASE, "champion": current.model_id if current else BASE,
                    **{m.model_id: m.model_id for m in list_models(client)}}

        with StandIn(missions, policy, names) as server:
            settings = LoopSettings.from_config(cfg, rounds=1, groups=8, eval_per_family=1, seed=3,
                                                train={"max_steps": 3, "learning_rate": 5e-3})
            lines: list[str] = []
            result = asyncio.run(run_loop(cfg, None, server.base_url, settings, say=lines.append))
        assert result.base_eval.model_id == BASE and result.base_eval.success == 0.25  # 1 of 4 families
        (r,) = result.rounds
        assert r.runs == 8 * cfg.judge.rollouts_per_group
        assert r.own_examples == r.train_successes > 0 and r.fleet_examples == 0
        assert r.candidate is not None and r.train_steps == 3
        assert r.eval is not None and r.eval.success == 1.0
        assert r.decision is not None and r.decision.promoted and r.hot_load_s is not None
        assert result.champion == r.candidate and result.champion_eval.success == 1.0
        record = get_model(client, r.candidate)
        assert record.metrics["eval_success"] == 1.0 and record.is_champion
        # the trained window held only exact successes of the lineage, never an evaluation run
        window = pull_window(client, WindowFilter(reward_version=cfg.judge.reward_version, models=[BASE],
                                                  min_success=1.0), record=False)
        assert {t.session_id for t in window.trajectories} and all(t.agent_config["run_kind"] == "training"
                                                                  for t in window.trajectories)
        assert any("PROMOTED" in line for line in lines) and any(line.startswith("round 1:") for line in lines)
        table = "\n".join(result.table())
        assert BASE in table and r.candidate in table and "promoted" in table
        curve = client.query("SELECT round, model_id, successes, missions FROM learning_curve "
                             "WHERE loop_id = {l:String} ORDER BY round", parameters={"l": result.loop_id}).result_rows
        assert curve == [(0, BASE, 1, 4), (1, r.candidate, 4, 4)]
        from stack.report import learning_curve

        section = learning_curve(client)
        assert "Learning curve" in section and "<img" in section and r.candidate in section

