"""A run SIGKILLed after a checkpoint resumes from it and ends at the same step with the same curve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainer.checkpoints import checkpoint_dirs
from trainer.config import TrainingConfig
from trainer.train import train_window
from trainer.windows import Window, WindowFilter, pull_window, split_window

pytestmark = pytest.mark.train
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from pathlib import Path
from trainer.config import TrainingConfig
from trainer.train import train_window
from trainer.windows import Window
d = Path(sys.argv[1])
cfg = TrainingConfig.from_dict(__import__("json").loads((d / "cfg.json").read_text()))
train = Window.model_validate_json((d / "train.json").read_text())
held = Window.model_validate_json((d / "held.json").read_text())
train_window(cfg, train, d / "run", heldout=held, progress=False, on_step=lambda s, loss: time.sleep(0.4))
"""


def test_killed_run_resumes_from_its_checkpoint(filled_store: Any, tiny_model: Path, tmp_path: Path) -> None:
    train, held = split_window(pull_window(filled_store, WindowFilter(min_reward=0.7)), 0.25)
    cfg = TrainingConfig(model_path=str(tiny_model), learning_rate=5e-3, max_steps=12, batch_size=4, num_epochs=50,
                         max_length=256, checkpoint_interval=3, evaluation_interval=6, early_stopping_patience=0)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    (tmp_path / "train.json").write_text(train.model_dump_json())
    (tmp_path / "held.json").write_text(held.model_dump_json())
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not checkpoint_dirs(run_dir):
        assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    saved = int(checkpoint_dirs(run_dir)[-1].name.split("-")[1])  # killed mid-way: later steps are lost
    assert 3 <= saved < 12

    resumed = train_window(cfg, Window.model_validate_json((tmp_path / "train.json").read_text()), run_dir,
                           heldout=held, progress=False)
    assert resumed.resumed_from == saved
    assert resumed.steps == 12
    assert [h["step"] for h in resumed.history] == list(range(1, 13))

    straight = train_window(cfg, train, tmp_path / "straight", heldout=held, progress=False)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-3)
    assert resumed.metrics["eval_loss"] == pytest.approx(straight.metrics["eval_loss"], rel=1e-3)
