"""Model registry: a ``models`` row per adapter plus a folder with everything needed to use it.

The table is a ReplacingMergeTree(updated_at): promotion writes new rows for the old and new
champion with a later updated_at, and reads use FINAL. One champion per specialisation; a model
becomes champion when its held-out loss beats the current champion's, or when promoted explicitly.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from schemas.models import Timestamp
from trainer.config import TrainingConfig
from trainer.errors import TrainerError
from trainer.plots import save_curves
from trainer.specializations import GENERAL
from trainer.train import TrainResult

COLUMNS = ["model_id", "name", "base_model", "objective", "specialization", "window_id", "path", "metrics",
           "is_champion", "created_at", "updated_at"]
CHAMPION_METRIC = "eval_loss"
BASE_OBJECTIVE = "base"
"""The objective of a base model's row: the model itself, no adapter (``art models base``)."""


class ModelRecord(BaseModel):
    model_id: str
    name: str
    base_model: str
    objective: str
    specialization: str = GENERAL
    window_id: str
    path: str
    metrics: dict[str, float] = Field(default_factory=dict)
    is_champion: bool = False
    created_at: Timestamp
    updated_at: Timestamp


def _now() -> datetime:
    """Now at the column's resolution (ms), so a stamp written and read back compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _write(client: Any, record: ModelRecord) -> None:
    row = record.model_dump()
    row["is_champion"] = int(record.is_champion)
    client.insert("models", [[row[c] for c in COLUMNS]], column_names=COLUMNS)


def register_model(client: Any, *, result: TrainResult, cfg: TrainingConfig, window_id: str, models_dir: Path,
                   specialization: str = GENERAL, name: str | None = None) -> ModelRecord:
    """Copy the adapter into ``models_dir/<model_id>/`` with config, metrics, window and curves; insert the row."""
    now = _now()
    model_id = f"m-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder = models_dir / model_id
    shutil.copytree(result.adapter_dir, folder / "adapter")
    (folder / "config.json").write_text(cfg.to_json())
    (folder / "metrics.json").write_text(json.dumps({"metrics": result.metrics, "evals": result.evals}, indent=1))
    (folder / "window.json").write_text(json.dumps({"window_id": window_id, "base_model": cfg.model_path}))
    save_curves(result.history, result.evals, folder / "curves.png", title=f"{model_id} ({cfg.objective})")
    record = ModelRecord(model_id=model_id, name=name or f"{specialization}-{cfg.objective}",
                         base_model=cfg.model_path, objective=cfg.objective, specialization=specialization,
                         window_id=window_id, path=str(folder.resolve()), metrics=result.metrics,
                         created_at=now, updated_at=now)
    _write(client, record)
    return record


def register_base_model(client: Any, *, model_id: str, name: str, path: Path) -> ModelRecord:
    """Insert a base model's row (objective ``base``, no adapter) unless ``model_id`` is already there."""
    found = [m for m in list_models(client) if m.model_id == model_id]
    if found:
        return found[0]
    now = _now()
    record = ModelRecord(model_id=model_id, name=name, base_model=str(path.resolve()), objective=BASE_OBJECTIVE,
                         specialization=GENERAL, window_id="", path=str(path.resolve()), created_at=now,
                         updated_at=now)
    _write(client, record)
    return record


def list_models(client: Any, specialization: str | None = None) -> list[ModelRecord]:
    where, params = ("WHERE specialization = {s:String}", {"s": specialization}) if specialization else ("", {})
    result = client.query(f"SELECT {', '.join(COLUMNS)} FROM models FINAL {where} ORDER BY created_at, model_id",
                          parameters=params)
    return [ModelRecord.model_validate(row) for row in result.named_results()]


def get_model(client: Any, model_id: str) -> ModelRecord:
    found = [m for m in list_models(client) if m.model_id == model_id]
    if not found:
        raise TrainerError(f"no model {model_id} in the registry")
    return found[0]


def champion(client: Any, specialization: str = GENERAL) -> ModelRecord | None:
    current = [m for m in list_models(client, specialization) if m.is_champion]
    return max(current, key=lambda m: m.updated_at, default=None)


def promote(client: Any, model_id: str) -> ModelRecord:
    """Make ``model_id`` the champion of its specialisation; the previous champion is demoted first."""
    record = get_model(client, model_id)
    stamp = _now()
    for other in list_models(client, record.specialization):
        if other.is_champion and other.model_id != model_id:
            stamp = max(stamp, other.updated_at + timedelta(milliseconds=1))
            _write(client, other.model_copy(update={"is_champion": False, "updated_at": stamp}))
    stamp = max(stamp, record.updated_at + timedelta(milliseconds=1))
    promoted = record.model_copy(update={"is_champion": True, "updated_at": stamp})
    _write(client, promoted)
    return promoted


def promote_if_better(client: Any, record: ModelRecord, metric: str = CHAMPION_METRIC) -> bool:
    """Promote when there is no champion yet or ``record`` has a lower held-out ``metric``."""
    if metric not in record.metrics:
        return False
    current = champion(client, record.specialization)
    if current is not None and current.model_id != record.model_id and \
            current.metrics.get(metric, float("inf")) <= record.metrics[metric]:
        return False
    promote(client, record.model_id)
    return True
