"""Choosing the next token of every row of a batch, each with its own sampling parameters.

Logprobs are the model's raw ones (log-softmax of the logits, before temperature and top-p), as
vLLM reports by default: that is the policy's probability of the token, what a trainer compares
against. Greedy rows (temperature 0) take the argmax; sampled rows draw with their own generator,
so a request's ``seed`` reproduces its samples whatever else shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stops: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False


@dataclass(frozen=True)
class Choice:
    token: int
    logprob: float
    top: list[tuple[int, float]]


def choose(logits: Any, params: list[SamplingParams], generators: list[Any]) -> list[Choice]:
    """One token per row of ``logits`` [rows, vocab]; ``generators[i]`` is row i's torch.Generator."""
    import torch

    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    tokens = logits.argmax(dim=-1)
    for i, p in enumerate(params):
        if p.temperature <= 0:
            continue
        row = logits[i] / p.temperature
        if p.top_p < 1.0:
            ordered, index = torch.sort(row, descending=True)
            probs = torch.softmax(ordered, dim=-1)
            outside = probs.cumsum(-1) - probs > p.top_p  # keep the smallest prefix reaching top_p
            row = row.clone()
            row[index[outside]] = float("-inf")
        tokens[i] = torch.multinomial(torch.softmax(row, dim=-1), 1, generator=generators[i])[0]
    chosen = logp.gather(1, tokens[:, None])[:, 0].tolist()
    k = max((p.top_logprobs for p in params), default=0)
    tops: list[list[tuple[int, float]]] = [[] for _ in params]
    if k:
        values, ids = logp.topk(k, dim=-1)
        for i, p in enumerate(params):
            if p.top_logprobs:
                tops[i] = list(zip(ids[i, :p.top_logprobs].tolist(), values[i, :p.top_logprobs].tolist(),
                                   strict=True))
    return [Choice(t, lp, top) for t, lp, top in zip(tokens.tolist(), chosen, tops, strict=True)]
