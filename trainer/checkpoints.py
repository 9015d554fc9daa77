"""Checkpoints: adapter + optimizer + step + RNG state + curves, written atomically.

A run killed at any moment resumes from its newest complete checkpoint: the directory is written
under a temporary name and renamed, so a half-written checkpoint is never picked up.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"
KEEP = 2


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE_FILE).exists())


def save_checkpoint(run_dir: Path, model: Any, optimizer: Any, step: int, extra: dict[str, Any]) -> Path:
    import torch

    root = run_dir / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    torch.save({"step": step, "optimizer": optimizer.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}, **extra}, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoint_dirs(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore adapter weights, optimizer and RNG into the live objects; returns the saved state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    state = torch.load(path / STATE_FILE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    return state
