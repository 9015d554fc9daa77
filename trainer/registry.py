"""Model registry: a ``models`` row per adapter plus a folder with everything needed to use it.

The table is a ReplacingMergeTree(updated_at): promotion and evaluation write new rows with a later
updated_at, and reads use FINAL. One champion per specialisation. A model becomes champion by
outcome: when its evaluated held-out task success (``eval_success``, written by ``art eval``) beats
the current champion's by the configured margin — or when promoted explicitly. Held-out loss stays
in the metrics as a diagnostic; it never decides.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from schemas.models import Timestamp
from trainer.config import TrainingConfig
from trainer.errors import TrainerError
from trainer.plots import save_curves
from trainer.specializations import GENERAL
from trainer.train import TrainResult

COLUMNS = ["model_id", "name", "base_model", "objective", "specialization", "window_id", "heldout_session_ids",
           "reward_threshold", "path", "metrics", "is_champion", "created_at", "updated_at"]
CHAMPION_METRIC = "eval_success"
SIZE_METRIC = "eval_missions"
BASE_OBJECTIVE = "base"
"""The objective of a base model's row: the model itself, no adapter (``art models base``)."""


class ModelRecord(BaseModel):
    model_id: str
    name: str
    base_model: str
    objective: str
    specialization: str = GENERAL
    window_id: str
    heldout_session_ids: list[str] = Field(default_factory=list)  # the window's runs held out of training
    reward_threshold: float = 0.0  # the reward a run needed to enter the training data
    path: str
    metrics: dict[str, float] = Field(default_factory=dict)
    is_champion: bool = False
    created_at: Timestamp
    updated_at: Timestamp


def _now() -> datetime:
    """Now at the column's resolution (ms), so a stamp written and read back compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _write(client: Client, record: ModelRecord) -> None:
    row = record.model_dump()
    row["is_champion"] = int(record.is_champion)
    client.insert("models", [[row[c] for c in COLUMNS]], column_names=COLUMNS)


def register_model(client: Client, *, result: TrainResult, cfg: TrainingConfig, window_id: str, models_dir: Path,
                   specialization: str = GENERAL, name: str | None = None, heldout_session_ids: list[str] | None = None,
                   reward_threshold: float = 0.0) -> ModelRecord:
    """Copy the adapter into ``models_dir/<model_id>/`` with config, metrics, window and curves; insert the row."""
    now = _now()
    model_id = f"m-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder = models_dir / model_id
    shutil.copytree(result.adapter_dir, folder / "adapter")
    (folder / "config.json").write_text(cfg.to_json())
    (folder / "metrics.json").write_text(json.dumps({"metrics": result.metrics, "evals": result.evals,
                                                     "history": result.history}, indent=1))  # curves for art ui
    heldout = sorted(heldout_session_ids or [])
    (folder / "window.json").write_text(json.dumps({"window_id": window_id, "base_model": cfg.model_path,
                                                    "heldout_session_ids": heldout,
                                                    "reward_threshold": reward_threshold}))
    save_curves(result.history, result.evals, folder / "curves.png", title=f"{model_id} ({cfg.objective})")
    record = ModelRecord(model_id=model_id, name=name or f"{specialization}-{cfg.objective}",
                         base_model=cfg.model_path, objective=cfg.objective, specialization=specialization,
                         window_id=window_id, heldout_session_ids=heldout, reward_threshold=reward_threshold,
                         path=str(folder.resolve()), metrics=result.metrics, created_at=now, updated_at=now)
    _write(client, record)
    return record


def register_base_model(client: Client, *, model_id: str, name: str, path: Path) -> ModelRecord:
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


def list_models(client: Client, specialization: str | None = None) -> list[ModelRecord]:
    where, params = ("WHERE specialization = {s:String}", {"s": specialization}) if specialization else ("", {})
    result = client.query(f"SELECT {', '.join(COLUMNS)} FROM models FINAL {where} ORDER BY created_at, model_id",
                          parameters=params)
    return [ModelRecord.model_validate(row) for row in result.named_results()]


def get_model(client: Client, model_id: str) -> ModelRecord:
    found = [m for m in list_models(client) if m.model_id == model_id]
    if not found:
        raise TrainerError(f"no model {model_id} in the registry")
    return found[0]


def champion(client: Client, specialization: str = GENERAL) -> ModelRecord | None:
    current = [m for m in list_models(client, specialization) if m.is_champion]
    return max(current, key=lambda m: m.updated_at, default=None)


def promote(client: Client, model_id: str) -> ModelRecord:
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


class PromotionDecision(BaseModel):
    """Why a model was or was not promoted, with the numbers compared."""

    promoted: bool
    reason: str
    candidate: float | None = None
    champion: float | None = None
    champion_id: str | None = None
    margin: float = 0.0


def decide_promotion(record: ModelRecord, current: ModelRecord | None, margin: float) -> PromotionDecision:
    """The promotion rule, pure: ``record`` must have an evaluated success that beats ``current``'s by ``margin``."""
    mine = record.metrics.get(CHAMPION_METRIC)
    if mine is None:
        return PromotionDecision(promoted=False, margin=margin, reason=f"{record.model_id} has no evaluated task "
                                 f"success yet (art eval {record.model_id})")
    if current is None or current.model_id == record.model_id:
        return PromotionDecision(promoted=current is None, candidate=mine, margin=margin,
                                 reason="no champion yet" if current is None else "already the champion")
    theirs = current.metrics.get(CHAMPION_METRIC)
    base = {"candidate": mine, "champion": theirs, "champion_id": current.model_id, "margin": margin}
    if theirs is None:
        return PromotionDecision(promoted=False, **base, reason=f"champion {current.model_id} has no evaluated task "
                                 f"success to compare with (art eval {current.model_id})")
    if record.metrics.get(SIZE_METRIC) != current.metrics.get(SIZE_METRIC):
        return PromotionDecision(promoted=False, **base, reason="evaluated on different mission sets "
                                 f"({record.metrics.get(SIZE_METRIC)} vs {current.metrics.get(SIZE_METRIC)} missions)")
    if mine > theirs and mine >= theirs + margin - 1e-9:
        return PromotionDecision(promoted=True, **base, reason=f"task success {mine:.3f} beats the champion's "
                                 f"{theirs:.3f} by at least {margin:.3f}")
    return PromotionDecision(promoted=False, **base, reason=f"task success {mine:.3f} does not beat the champion's "
                             f"{theirs:.3f} by {margin:.3f}")


def promote_if_better(client: Client, record: ModelRecord, margin: float) -> PromotionDecision:
    """Promote ``record`` when ``decide_promotion`` says so. A specialisation without a champion of its own
    compares with the general champion (the model its agents are served until then)."""
    current = champion(client, record.specialization)
    if current is None and record.specialization != GENERAL:
        current = champion(client, GENERAL)
        if current is not None and current.model_id == record.model_id:
            current = None
    decision = decide_promotion(get_model(client, record.model_id), current, margin)
    if decision.promoted:
        promote(client, record.model_id)
    return decision


def evaluation_summary(record: ModelRecord) -> list[str]:
    """Human lines for the evaluation metrics ``art eval`` stored (none when never evaluated)."""
    m = record.metrics
    if CHAMPION_METRIC not in m:
        return []
    families = sorted(k.removeprefix("eval_success_") for k in m
                      if k.startswith("eval_success_") and k not in ("eval_success_lo", "eval_success_hi"))
    lines = [f"task success {m[CHAMPION_METRIC]:.3f} (95% CI {m.get('eval_success_lo', 0):.3f}-"
             f"{m.get('eval_success_hi', 1):.3f}) on {int(m.get(SIZE_METRIC, 0))} held-out missions",
             f"mean reward {m.get('eval_reward', 0):.3f} ± {m.get('eval_reward_ci', 0):.3f}, efficiency "
             f"{m.get('eval_efficiency', 0):.3f}, steps {m.get('eval_steps', 0):.2f}, "
             f"{m.get('eval_tokens_per_s', 0):.1f} tokens/s"]
    if families:
        lines.append("per family: " + ", ".join(f"{f} {m['eval_success_' + f]:.2f}" for f in families))
    return lines


def record_metrics(client: Client, model_id: str, metrics: dict[str, float]) -> ModelRecord:
    """Merge ``metrics`` into the model's row (a new version of the row; evaluation writes here)."""
    record = get_model(client, model_id)
    stamp = max(_now(), record.updated_at + timedelta(milliseconds=1))
    updated = record.model_copy(update={"metrics": {**record.metrics, **metrics}, "updated_at": stamp})
    _write(client, updated)
    return updated
