"""Packing must change speed only: packed sequences never attend to each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer import synthetic
from trainer.batches import collate
from trainer.config import TrainingConfig
from trainer.datasets import sft_examples
from trainer.losses import token_logps
from trainer.train import load_policy
from trainer.windows import window_from_runs

pytestmark = pytest.mark.train


def test_packed_log_probs_equal_padded_ones(tiny_model: Path) -> None:
    import torch

    model, tokenizer = load_policy(TrainingConfig(model_path=str(tiny_model)))
    seqs = sft_examples(window_from_runs(synthetic.runs(3, 4, seed=5)).trajectories, tokenizer, 512)[:8]
    packed = collate(seqs, 512, tokenizer.pad_token_id, pack=True)
    padded = collate(seqs, 512, tokenizer.pad_token_id, pack=False)
    assert packed.input_ids.shape[0] < padded.input_ids.shape[0]  # several sequences share a row
    assert packed.tokens == padded.tokens == sum(len(s) for s in seqs)
    with torch.no_grad():
        a, b = token_logps(model, packed), token_logps(model, padded)
    order_a, order_b = packed.target_seq.argsort(stable=True), padded.target_seq.argsort(stable=True)
    assert torch.allclose(a[order_a], b[order_b], atol=1e-4)
