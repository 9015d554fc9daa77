"""Joining, selecting and trimming rows of a left-padded KV cache, for continuous batching.

Rows of a running batch share one cache whose sequence axis is left-padded: a new request joins
by padding the shorter of (running cache, its prefill cache) on the left and concatenating along
the batch axis; finished rows leave by index selection, and columns that are padding in every
remaining row are cut. Positions are tracked per row by the engine, so padding never shifts RoPE.
Only ``DynamicCache.layers[i].keys/values`` is read; new caches are built through ``update``.
"""

from __future__ import annotations

from typing import Any

Layers = list[tuple[Any, Any]]


def layers_of(cache: Any) -> Layers:
    return [(layer.keys, layer.values) for layer in cache.layers]


def build(layers: Layers) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(layers):
        cache.update(k, v, i)
    return cache


def _pad_left(t: Any, width: int, dim: int) -> Any:
    import torch.nn.functional as F

    missing = width - t.shape[dim]
    if missing == 0:
        return t
    pad = [0, 0] * (t.dim() - 1 - dim % t.dim()) + [missing, 0]
    return F.pad(t, pad)


def join(a: Layers, a_mask: Any, b: Layers, b_mask: Any) -> tuple[Layers, Any]:
    """Rows of ``a`` then rows of ``b``, left-padded to a common length (mask 0 on padding)."""
    import torch

    width = max(a_mask.shape[1], b_mask.shape[1])
    layers = [(torch.cat([_pad_left(ka, width, 2), _pad_left(kb, width, 2)]),
               torch.cat([_pad_left(va, width, 2), _pad_left(vb, width, 2)]))
              for (ka, va), (kb, vb) in zip(a, b, strict=True)]
    return layers, torch.cat([_pad_left(a_mask, width, 1), _pad_left(b_mask, width, 1)])


def select(layers: Layers, mask: Any, rows: list[int]) -> tuple[Layers, Any]:
    """Keep ``rows``, then drop leading columns that no kept row attends to."""
    import torch

    index = torch.tensor(rows, dtype=torch.long)
    mask = mask.index_select(0, index)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else mask.shape[1]
    return [(k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in layers], mask[:, start:]
