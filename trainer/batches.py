"""Collating sequences into model inputs: packed rows instead of padded ones.

Padding a batch to its longest sequence wastes ≈30% of the compute on these data (TRAINER.md).
Packing places whole sequences side by side in rows of ``max_length``; position ids restart at 0 for
each sequence, and with ``attention_mask=None`` transformers turns restarts into a block-diagonal
causal mask, so packed sequences never see each other. Only positions whose next token is in the
loss are sent through the LM head (``hidden_index``), which the loss would otherwise discard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.datasets import Encoded


@dataclass
class Batch:
    input_ids: Any  # LongTensor [rows, length]
    position_ids: Any  # LongTensor [rows, length]
    hidden_index: Any  # LongTensor [n]: flat index into rows*length of the position predicting each target
    targets: Any  # LongTensor [n]: the target token ids
    weights: Any  # FloatTensor [n]: the weight of each target's sequence
    target_seq: Any  # LongTensor [n]: index of each target's sequence in the batch
    n_seqs: int
    tokens: int  # non-pad tokens


def _rows(lengths: list[int], max_length: int, pack: bool) -> list[list[int]]:
    """Sequence indices per row: first-fit decreasing when packing, one per row otherwise."""
    if not pack:
        return [[i] for i in range(len(lengths))]
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_length - lengths[i])
    return rows


def collate(seqs: list[Encoded], max_length: int, pad_id: int, pack: bool = True) -> Batch:
    """Rows padded on the right to the longest row; pads continue the last positions (no new segment)."""
    import torch

    seqs = [Encoded(s.ids[:max_length], s.mask[:max_length], s.weight) for s in seqs]
    rows = _rows([len(s) for s in seqs], max_length, pack)
    width = max(sum(len(seqs[i]) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    hidden_index: list[int] = []
    targets: list[int] = []
    weights: list[float] = []
    target_seq: list[int] = []
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            s = seqs[i]
            n = len(s)
            ids[r, at:at + n] = torch.tensor(s.ids)
            pos[r, at:at + n] = torch.arange(n)
            for t in range(1, n):
                if s.mask[t]:
                    hidden_index.append(r * width + at + t - 1)
                    targets.append(s.ids[t])
                    weights.append(s.weight)
                    target_seq.append(i)
            at += n
        if at < width:
            start = int(pos[r, at - 1]) + 1 if at else 0
            pos[r, at:] = torch.arange(start, start + width - at)
    return Batch(ids, pos, torch.tensor(hidden_index, dtype=torch.long), torch.tensor(targets, dtype=torch.long),
                 torch.tensor(weights, dtype=torch.float32), torch.tensor(target_seq, dtype=torch.long),
                 len(seqs), sum(len(s) for s in seqs))
