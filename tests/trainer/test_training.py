from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer.config import TrainingConfig
from trainer.train import train_window
from trainer.windows import WindowFilter, pull_window, split_window

pytestmark = pytest.mark.train


def _cfg(model: Path, objective: str, **kw: Any) -> TrainingConfig:
    base: dict[str, Any] = {"model_path": str(model), "objective": objective, "learning_rate": 5e-3, "max_steps": 12,
                            "batch_size": 8, "groups_per_step": 4, "num_epochs": 50, "max_length": 256,
                            "evaluation_interval": 6, "checkpoint_interval": 0, "early_stopping_patience": 0}
    return TrainingConfig(**base | kw)


def _mean(xs: list[dict[str, float]]) -> float:
    return sum(x["loss"] for x in xs) / len(xs)


@pytest.mark.parametrize("objective", ["sft", "dpo", "awr"])
def test_objective_runs_and_loss_falls(objective: str, filled_store: Any, tiny_model: Path, tmp_path: Path) -> None:
    window = pull_window(filled_store, WindowFilter(min_reward=0.7 if objective == "sft" else None))
    train, held = split_window(window, 0.25)
    # AWR's per-batch loss swings with the batch's weights: give it more steps and compare halves.
    steps = 24 if objective == "awr" else 12
    cfg = _cfg(tiny_model, objective, max_steps=steps, evaluation_interval=steps // 2)
    result = train_window(cfg, train, tmp_path / "run", heldout=held, progress=False)
    assert result.steps == steps
    assert _mean(result.history[steps // 2:]) < _mean(result.history[:steps // 2]) * 0.95
    assert [e["step"] for e in result.evals] == [steps // 2, steps]
    assert 0.0 <= result.metrics["preference_accuracy"] <= 1.0
    if objective == "dpo":
        assert result.metrics["eval_dpo_loss"] < 0.69 and "reward_accuracy" in result.metrics
    else:
        assert result.evals[-1]["eval_loss"] < result.evals[0]["eval_loss"]


def test_adapter_reloads_with_peft_and_generates(filled_store: Any, tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    window = pull_window(filled_store, WindowFilter(min_reward=0.7))
    train, held = split_window(window, 0.25)
    result = train_window(_cfg(tiny_model, "sft", max_steps=6, evaluation_interval=0), train, tmp_path / "r",
                          heldout=held, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    plain = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.adapter_dir).eval()
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "Objective: research tide tables"},
                                            {"role": "user", "content": "Observation: nothing yet"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert not torch.allclose(plain(**prompt).logits, tuned(**prompt).logits)
        out = tuned.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_early_stopping_with_patience(filled_store: Any, tiny_model: Path, tmp_path: Path) -> None:
    window = pull_window(filled_store, WindowFilter(min_reward=0.7))
    train, held = split_window(window, 0.25)
    cfg = _cfg(tiny_model, "sft", learning_rate=0.0, max_steps=40, evaluation_interval=2, early_stopping_patience=2)
    result = train_window(cfg, train, tmp_path / "r", heldout=held, progress=False)
    assert result.stopped_early and result.steps == 6  # evals at 2 (best), 4 and 6 do not improve


def test_training_continues_from_an_init_adapter(filled_store: Any, tiny_model: Path, tmp_path: Path) -> None:
    """``init_adapter``: the policy starts as exactly that adapter (its weights, its LoRA shape, trainable),
    and training moves on from there; a folder that is no adapter is refused with the reason."""
    import torch
    from safetensors.torch import load_file

    from trainer.errors import TrainerError
    from trainer.train import load_policy

    window = pull_window(filled_store, WindowFilter(min_reward=0.7))
    first = train_window(_cfg(tiny_model, "sft", max_steps=4, evaluation_interval=0, lora_r=4), window,
                         tmp_path / "first", progress=False)
    model, _ = load_policy(_cfg(tiny_model, "sft", init_adapter=first.adapter_dir))  # lora_r 8 asked, 4 kept
    saved = load_file(str(Path(first.adapter_dir) / "adapter_model.safetensors"))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(saved) > 0
    for key, value in saved.items():
        match = [k for k in loaded if k.replace(".default", "") == key]
        assert len(match) == 1 and torch.equal(loaded[match[0]], value), key
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    assert {v.shape[0] for k, v in loaded.items() if "lora_A" in k} == {4}

    second = train_window(_cfg(tiny_model, "sft", max_steps=4, evaluation_interval=0, init_adapter=first.adapter_dir),
                          window, tmp_path / "second", progress=False)
    assert second.history[0]["loss"] < first.history[0]["loss"]  # it starts where the first run ended
    with pytest.raises(TrainerError, match="is not a LoRA adapter folder"):
        load_policy(_cfg(tiny_model, "sft", init_adapter=str(tmp_path)))
