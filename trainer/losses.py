"""Token log-probs of a batch, and the three objectives: SFT, AWR (weighted NLL) and DPO.

DPO is written out here rather than taken from TRL: the reference model is the same network with
its LoRA adapters disabled, so no second copy of the weights is held in memory.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from trainer.batches import Batch


def _parts(model: Any) -> tuple[Any, Any]:
    """(decoder, lm_head) of a peft-wrapped or plain causal LM; LoRA layers live inside the decoder."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def _post_processes_logits(model: Any) -> bool:
    """Models that scale or soft-cap logits after the head (Gemma 2, Cohere...) need their own forward."""
    config = model.config
    return any(getattr(config, name, None) not in (None, 1.0) for name in ("final_logit_softcapping", "logit_scale"))


def token_logps(model: Any, batch: Batch, bf16: bool = False) -> Any:
    """log p(target) for every target of ``batch`` (FloatTensor [n], fp32).

    Only the positions that predict a target go through the LM head: on small models with large
    vocabularies the head and its softmax are a big share of the compute, and the rest is discarded.
    """
    import torch
    import torch.nn.functional as F

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with ctx:
        if _post_processes_logits(model):
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=None,
                           use_cache=False).logits
            logits = logits.reshape(-1, logits.shape[-1]).index_select(0, batch.hidden_index)
        else:
            decoder, head = _parts(model)
            hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=None,
                             use_cache=False).last_hidden_state
            logits = head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.hidden_index))
    return -F.cross_entropy(logits.float(), batch.targets, reduction="none")


def weighted_nll(logps: Any, batch: Batch) -> Any:
    """Mean over target tokens of weight * NLL: plain SFT when every weight is 1, AWR otherwise."""
    return -(logps * batch.weights).sum() / max(1, logps.numel())


def sequence_logps(logps: Any, batch: Batch) -> Any:
    """Sum of target log-probs per sequence (FloatTensor [n_seqs])."""
    import torch

    return torch.zeros(batch.n_seqs, dtype=logps.dtype).index_add(0, batch.target_seq, logps)


def sequence_lengths(batch: Batch) -> Any:
    """Number of target tokens per sequence (FloatTensor [n_seqs], at least 1)."""
    import torch

    ones = torch.ones(batch.target_seq.numel(), dtype=torch.float32)
    return torch.zeros(batch.n_seqs).index_add(0, batch.target_seq, ones).clamp(min=1)


def reference_logps(model: Any, batch: Batch, bf16: bool = False) -> Any:
    """Sequence log-probs under the base model: the same network with the adapters switched off."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        return sequence_logps(token_logps(model, batch, bf16), batch)


def dpo_loss(policy: Any, reference: Any, beta: float) -> tuple[Any, Any]:
    """(mean DPO loss, share of pairs with a positive implicit reward margin); sequences are [c0, r0, c1, r1, ...]."""
    import torch.nn.functional as F

    margin = (policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2])
    return -F.logsigmoid(beta * margin).mean(), (margin > 0).float().mean()
