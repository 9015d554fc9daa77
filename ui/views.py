"""Request handlers: parse the URL, ask the page's module, render. No SQL here."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from aiohttp import web

from ui import live, registry, trajectories, versions
from ui.app import CFG, LIVE, STORE, render
from ui.filters import FilterError, TrajectoryFilter

MAX_PARAM = 500


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/live", live_page)
    app.router.add_get("/api/live", live_api)
    app.router.add_get("/trajectories", trajectory_list)
    app.router.add_get("/trajectories/{session_id:.+}", trajectory_page)  # ids may hold a /
    app.router.add_get("/versions", versions_page)
    app.router.add_get("/models", models_page)


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/live")


async def live_page(request: web.Request) -> web.Response:
    reason = _param(request, "reason")
    snapshot = await request.app[LIVE].snapshot()
    letters = await live.dead_letters(request.app[STORE], reason)
    return render(request, "live.html", {"title": "Live", "live": snapshot, "reason": reason, "letters": letters})


async def live_api(request: web.Request) -> web.Response:
    snapshot = await request.app[LIVE].snapshot()
    return web.Response(text=_json(snapshot), content_type="application/json", headers={"Cache-Control": "no-store"})


async def trajectory_list(request: web.Request) -> web.Response:
    cfg = request.app[CFG]
    flt = TrajectoryFilter.from_query(request.query)
    found = await trajectories.list_page(request.app[STORE], flt, _judge(cfg), cfg.judge.reward_version)
    return render(request, "trajectories.html", {"title": "Trajectories", "flt": flt, "page": found,
                                                 "statuses": ["succeeded", "failed", "error", "cancelled"]})


async def trajectory_page(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    found = await trajectories.detail(request.app[STORE], session_id)
    if found is None:
        raise web.HTTPNotFound()
    judgment_rows = [("task completion", "task_completion"), ("solution quality", "solution_quality"),
                     ("efficiency", "efficiency"), ("tool usage", "tool_usage"),
                     ("reasoning coherence", "reasoning_coherence"), ("error recovery", "error_recovery"),
                     ("overall", "overall")]
    reward_rows = [("total", "total"), ("success", "success"), ("efficiency", "efficiency"), ("quality", "quality"),
                   ("novelty", "novelty"), ("confidence", "confidence"), ("advantage", "advantage"),
                   ("group size", "group_size")]
    return render(request, "trajectory.html", {"title": f"Trajectory {session_id}", "d": found,
                                               "judgment_rows": judgment_rows, "reward_rows": reward_rows})


async def versions_page(request: web.Request) -> web.Response:
    kind = _param(request, "kind") or "judge"
    if kind not in ("judge", "reward"):
        raise FilterError("kind: is judge or reward")
    found = await versions.compare(request.app[STORE], kind, _param(request, "a"), _param(request, "b"))  # type: ignore[arg-type]
    charts = {"points": found.points, "histogram": found.histogram, "a": found.a, "b": found.b, "kind": kind}
    return render(request, "versions.html", {"title": "Versions", "c": found, "charts_json": _embedded(charts)})


async def models_page(request: web.Request) -> web.Response:
    cfg = request.app[CFG]
    found = await registry.page(request.app[STORE], cfg.storage.resolved_models_dir(), _param(request, "model"))
    charts = {"curves": found.curves, "success": found.success, "learning": found.learning, "bucket_s": found.bucket_s,
              "selected": found.selected["model_id"] if found.selected else None}
    return render(request, "models.html", {"title": "Models", "m": found, "charts_json": _embedded(charts)})


def _param(request: web.Request, name: str) -> str:
    value = request.query.get(name, "").strip()
    if len(value) > MAX_PARAM:
        raise FilterError(f"{name}: at most {MAX_PARAM} characters")
    return value


def _judge(cfg: Any) -> str:
    return f"{cfg.judge.name}@{cfg.judge.version}"


def _json(value: Any) -> str:
    return json.dumps(_finite(value), default=_default, allow_nan=False)


def _embedded(value: Any) -> str:
    """JSON for a <script type="application/json"> block: no "</script>" or markup can close it."""
    return _json(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (a chart gap, an em dash)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
