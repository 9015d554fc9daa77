"""One training run end to end: lock, window, split, train, register, champion; recorded in ``training_runs``.

The lock file (holding the pid) keeps two runs from training at once on this data dir, whoever
started them (``art train``, ``art specialize`` or the trainer consumer); a lock whose pid is dead
is stale and taken over.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from config.settings import ArtConfig
from trainer.config import TrainingConfig
from trainer.errors import RunLockedError, TrainerError
from trainer.registry import ModelRecord, register_model
from trainer.specializations import GENERAL
from trainer.train import TrainResult
from trainer.windows import Window, WindowFilter, load_window, pull_window, split_window


class RunLock:
    """An exclusive lock file with the holder's pid; ``with RunLock(path):``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def holder(self) -> int | None:
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self.holder()
                if pid is not None:
                    raise RunLockedError(f"training run {pid} holds {self.path}") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return
        raise RunLockedError(f"could not take {self.path}")

    def release(self) -> None:
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def lock_path(art: ArtConfig) -> Path:
    return art.storage.data_dir / "trainer" / "train.lock"


class RunOutcome(BaseModel):
    run_id: str
    window_id: str
    model: ModelRecord
    result: TrainResult


def open_store(art: ArtConfig) -> Any:
    from store.clickhouse import ensure_schema, writer

    client = writer(art)  # the running stack's gateway (with its writer secret), if any
    ensure_schema(client)
    return client


def _record_run(client: Client, run_id: str, window_id: str, cfg: TrainingConfig, specialization: str, status: str,
                started_at: datetime, steps: int = 0, metrics: dict[str, float] | None = None, model_id: str = "",
                error: str = "") -> None:
    client.insert("training_runs", [[run_id, window_id, model_id, cfg.objective, specialization, status,
                                     cfg.to_json(), steps, metrics or {}, error, started_at, datetime.now(UTC)]],
                  column_names=["run_id", "window_id", "model_id", "objective", "specialization", "status", "config",
                                "steps", "metrics", "error", "started_at", "updated_at"])


def run_training(art: ArtConfig, cfg: TrainingConfig, flt: WindowFilter, *, specialization: str | None = None,
                 name: str | None = None, client: Client | None = None, progress: bool = True,
                 run_id: str | None = None, window: Window | None = None) -> RunOutcome:
    """Pull (or reuse) the window, train under the lock, register the model. Promotion is by evaluated
    outcome (``art eval``), so a freshly trained model is registered, never promoted here."""
    from trainer.train import train_window

    cfg.model_path = cfg.model_path or art.models.base_model
    if not cfg.model_path:
        raise TrainerError("no base model: pass --model-path or set [art.models] base_model")
    spec = specialization or flt.specialization or GENERAL
    client = client if client is not None else open_store(art)
    with RunLock(lock_path(art)):
        window = window or pull_window(client, flt)
        run_id = run_id or f"r-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        started = datetime.now(UTC)
        _record_run(client, run_id, window.window_id, cfg, spec, "running", started)
        train, heldout = split_window(window, cfg.eval_fraction, cfg.seed)
        try:
            result = train_window(cfg, train, art.storage.resolved_checkpoints_dir() / run_id, heldout=heldout,
                                  reward_threshold=art.reward_threshold, progress=progress)
        except Exception as exc:
            _record_run(client, run_id, window.window_id, cfg, spec, "failed", started, error=str(exc)[:2000])
            raise
        record = register_model(client, result=result, cfg=cfg, window_id=window.window_id,
                                models_dir=art.storage.resolved_models_dir(), specialization=spec, name=name,
                                heldout_session_ids=[t.session_id for t in heldout.trajectories],
                                reward_threshold=art.reward_threshold)
        _record_run(client, run_id, window.window_id, cfg, spec, "finished", started, result.steps, result.metrics,
                    record.model_id)
    return RunOutcome(run_id=run_id, window_id=window.window_id, model=record, result=result)


def resume_training(art: ArtConfig, run_id: str, *, client: Client | None = None, progress: bool = True) -> RunOutcome:
    """Continue a killed run from its newest checkpoint: same window, same config, same final step."""
    client = client if client is not None else open_store(art)
    rows = list(client.query("SELECT window_id, config, specialization FROM training_runs FINAL "
                             "WHERE run_id = {id:String}", parameters={"id": run_id}).named_results())
    if not rows:
        raise TrainerError(f"no training run {run_id}")
    cfg = TrainingConfig.from_dict(json.loads(rows[0]["config"]))
    window = load_window(client, rows[0]["window_id"])
    return run_training(art, cfg, WindowFilter(), specialization=rows[0]["specialization"], client=client,
                        progress=progress, run_id=run_id, window=window)
