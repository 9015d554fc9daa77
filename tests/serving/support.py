"""Recomputing what the server answered, with models loaded afresh (never the served instance)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def fresh_model(base: Path, adapter: Path | None = None) -> Any:
    """The base model (plus one LoRA adapter), loaded independently of the server's engine."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


@cache
def tokenizer_of(base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def prompt_ids(base: Path, messages: list[dict[str, str]], continue_final: bool = False) -> list[int]:
    tok = tokenizer_of(base)
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=not continue_final,
                                   continue_final_message=continue_final)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def recompute(base: Path, prompt: list[int], completion: list[int], adapter: Path | None = None) -> list[float]:
    """log p(completion[i] | prompt + completion[:i]) under the model, one forward pass, no padding."""
    import torch

    with torch.no_grad():
        logits = fresh_model(base, adapter)(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1]
        logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) B weights: changes the model's answers, like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(out)
    return out
