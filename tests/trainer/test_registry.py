from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import ArtConfig
from trainer.config import TrainingConfig
from trainer.errors import RunLockedError
from trainer.registry import champion, get_model, list_models, promote
from trainer.runs import RunLock, lock_path, run_training
from trainer.windows import WindowFilter, pull_window, split_window

pytestmark = pytest.mark.train


def _cfg(model: Path, **kw: Any) -> TrainingConfig:
    base: dict[str, Any] = {"model_path": str(model), "learning_rate": 5e-3, "max_steps": 6, "batch_size": 8,
                            "num_epochs": 50, "max_length": 256, "evaluation_interval": 3, "checkpoint_interval": 0}
    return TrainingConfig(**base | kw)


def test_runs_register_models_and_promote_champions(filled_store: Any, art: ArtConfig, tiny_model: Path) -> None:
    flt = WindowFilter(min_reward=0.7)
    first = run_training(art, _cfg(tiny_model), flt, client=filled_store, progress=False)
    assert champion(filled_store) is None  # training registers; only an evaluated outcome promotes
    folder = Path(first.model.path)
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "config.json", "metrics.json",
                 "window.json", "curves.png"):
        assert (folder / name).exists(), name
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((folder / "window.json").read_text())["window_id"] == first.window_id
    assert json.loads((folder / "config.json").read_text())["model_path"] == str(tiny_model)
    window = pull_window(filled_store, flt)  # the same rows, so the same deterministic split
    _, heldout = split_window(window, _cfg(tiny_model).eval_fraction, _cfg(tiny_model).seed)
    held_ids = sorted(t.session_id for t in heldout.trajectories)
    assert held_ids and len(held_ids) < len(window.trajectories)
    assert first.model.heldout_session_ids == held_ids and first.model.reward_threshold == art.reward_threshold
    assert get_model(filled_store, first.model.model_id).heldout_session_ids == held_ids
    assert get_model(filled_store, first.model.model_id).reward_threshold == art.reward_threshold
    assert json.loads((folder / "window.json").read_text())["heldout_session_ids"] == held_ids

    worse = run_training(art, _cfg(tiny_model, learning_rate=0.0), flt, client=filled_store, progress=False)
    better = run_training(art, _cfg(tiny_model, max_steps=12), flt, client=filled_store, progress=False)
    assert better.model.metrics["eval_loss"] < first.model.metrics["eval_loss"]  # kept as a diagnostic
    assert champion(filled_store) is None

    rows = list_models(filled_store)
    assert [m.model_id for m in rows] == [first.model.model_id, worse.model.model_id, better.model.model_id]
    promote(filled_store, better.model.model_id)
    assert [m.model_id for m in list_models(filled_store) if m.is_champion] == [better.model.model_id]
    assert rows[0].window_id == first.window_id and rows[0].objective == "sft" and rows[0].base_model

    promote(filled_store, worse.model.model_id)  # explicit promotion wins regardless of metrics
    current = champion(filled_store)
    assert current is not None and current.model_id == worse.model.model_id
    assert not get_model(filled_store, better.model.model_id).is_champion
    runs = filled_store.query("SELECT status, model_id FROM training_runs FINAL ORDER BY started_at").result_rows
    assert [r[0] for r in runs] == ["finished"] * 3


def test_lock_keeps_one_run_at_a_time(art: ArtConfig, tmp_path: Path) -> None:
    with RunLock(lock_path(art)), pytest.raises(RunLockedError):
        RunLock(lock_path(art)).acquire()
    lock_path(art).write_text("999999999")  # a dead pid: stale, taken over
    with RunLock(lock_path(art)) as lock:
        assert lock.holder() is not None
    assert not lock_path(art).exists()
