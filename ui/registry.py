"""The Models page: the registry, champions, training runs with their windows, loss curves,
evaluations and the learning curve.

Everything comes from the store through the reader, except a model's per-step losses, which the
trainer keeps beside the adapter (``<models_dir>/<model_id>/metrics.json``): that file is read only
there (the id is checked, the path never comes from a row), size-capped and parsed as data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ui.store import UiStore

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_METRICS_FILE = 8 << 20
CURVE_POINTS = 60

_MODELS = """SELECT model_id, name, base_model, objective, specialization, window_id, metrics, is_champion, created_at,
       updated_at FROM models FINAL ORDER BY created_at DESC, model_id LIMIT 500"""
_RUNS = """SELECT run_id, window_id, model_id, objective, specialization, status, steps, metrics, error, started_at,
       updated_at FROM training_runs FINAL ORDER BY started_at DESC, run_id LIMIT 200"""
_WINDOWS = """SELECT window_id, reward_version, trajectory_count, step_count, group_count, created_at
FROM training_windows FINAL WHERE window_id IN {ids:Array(String)}"""
_EVALUATIONS = """SELECT eval_id, model_id, split, suite, missions, successes, metrics, loop_id, round, started_at,
       finished_at
FROM evaluations FINAL ORDER BY finished_at DESC, eval_id LIMIT 500"""
_LEARNING = """SELECT loop_id, round, model_id, objective, missions, successes, success_rate, success_lo, success_hi,
       mean_reward, is_champion, finished_at FROM learning_curve ORDER BY finished_at, loop_id, round LIMIT 2000"""
_SPAN = "SELECT min(completed_at) AS lo, max(completed_at) AS hi, count() AS n FROM trajectories"
_SUCCESS = """SELECT model, toStartOfInterval(completed_at, toIntervalSecond({bucket:UInt32})) AS t, count() AS runs,
       countIf(status = 'succeeded') / count() AS success_rate
FROM trajectories GROUP BY model, t ORDER BY model, t LIMIT 20000"""


class LossPoint(BaseModel):
    step: float
    loss: float


class MetricsFile(BaseModel):
    """What the UI reads of a model's metrics.json (written by the trainer's registry)."""

    metrics: dict[str, float] = {}
    evals: list[dict[str, float]] = []
    history: list[LossPoint] = []


@dataclass
class ModelsPage:
    models: list[dict[str, Any]]
    champions: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    windows: dict[str, dict[str, Any]]
    selected: dict[str, Any] | None
    curves: dict[str, Any] | None
    evaluations: list[dict[str, Any]] | None  # None: the store has no evaluations table yet
    learning: list[dict[str, Any]]
    success: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bucket_s: int = 0


async def page(store: UiStore, models_dir: Path, selected_id: str | None) -> ModelsPage:
    models = await store.rows(_MODELS)
    runs = await store.rows(_RUNS)
    window_ids = sorted({m["window_id"] for m in models if m["window_id"]} | {r["window_id"] for r in runs})
    windows = {w["window_id"]: w for w in await store.rows(_WINDOWS, {"ids": window_ids})} if window_ids else {}
    champions = sorted((m for m in models if m["is_champion"]), key=lambda m: m["specialization"])
    selected = next((m for m in models if m["model_id"] == selected_id), None) if selected_id else None
    selected = selected or (champions[0] if champions else (models[0] if models else None))
    tables = await store.tables("evaluations", "learning_curve")  # stores older than `art eval` lack them
    evaluations = await store.rows(_EVALUATIONS) if "evaluations" in tables else None
    learning = await store.rows(_LEARNING) if "learning_curve" in tables else []
    success, bucket = await success_over_time(store)
    curves = read_curves(models_dir, selected["model_id"]) if selected else None
    return ModelsPage(models=models, champions=champions, runs=runs, windows=windows, selected=selected,
                      curves=curves, evaluations=evaluations, learning=learning, success=success, bucket_s=bucket)


async def success_over_time(store: UiStore) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Success rate of the agents' runs per model, in about ``CURVE_POINTS`` time buckets."""
    span = await store.one(_SPAN)
    if not span.get("n"):
        return {}, 0
    seconds = max(1.0, (span["hi"] - span["lo"]).total_seconds())
    bucket = _nice_bucket(seconds / CURVE_POINTS)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in await store.rows(_SUCCESS, {"bucket": bucket}):
        out.setdefault(r["model"] or "(none)", []).append(
            {"t": r["t"].timestamp() * 1000, "rate": r["success_rate"], "runs": int(r["runs"])})
    return out, bucket


def read_curves(models_dir: Path, model_id: str) -> dict[str, Any] | None:
    """Train loss per step and held-out metrics per evaluation, from the model's metrics.json."""
    if not MODEL_ID.match(model_id):
        return None
    root = models_dir.resolve()
    path = (root / model_id / "metrics.json").resolve()
    if root not in path.parents:
        return None
    try:
        if path.stat().st_size > MAX_METRICS_FILE:
            return None
        parsed = MetricsFile.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError):
        return None
    series: dict[str, list[list[float]]] = {}
    for e in parsed.evals:
        for key, value in e.items():
            if key != "step" and "step" in e and math.isfinite(value):
                series.setdefault(key, []).append([e["step"], value])
    return {"train_loss": [[p.step, p.loss] for p in parsed.history if math.isfinite(p.loss)], "evals": series}


def _nice_bucket(seconds: float) -> int:
    for step in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400):
        if seconds <= step:
            return step
    return 30 * 86400
