"""Two judge versions (overall score) or two reward versions (RULER total) compared trajectory by
trajectory, through the analyst views ``judge_version_comparison`` / ``reward_version_comparison``
(one definition of "compared", shared with `art sql` and `art report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ui.store import UiStore

Kind = Literal["judge", "reward"]
SCATTER_POINTS = 4000
MOVERS = 20
BINS = 20

_LIST = {
    "judge": "SELECT concat(judge_name, '@', judge_version) AS v, count() AS n FROM judgments GROUP BY v ORDER BY v",
    "reward": "SELECT reward_version AS v, count() AS n FROM rewards GROUP BY v ORDER BY v",
}
_SOURCE = {
    "judge": "judge_version_comparison(old_judge = {a:String}, new_judge = {b:String})",
    "reward": "reward_version_comparison(old_version = {a:String}, new_version = {b:String})",
}
_COLUMNS = {"judge": ("old_score", "new_score"), "reward": ("old_total", "new_total")}
# a shift below 1e-9 is float noise of equal scores, not a move
_SHIFT = "round(shift, 9)"


@dataclass
class Comparison:
    kind: Kind
    available: list[dict[str, Any]]
    a: str
    b: str
    summary: dict[str, Any] = field(default_factory=dict)
    points: list[list[float]] = field(default_factory=list)
    histogram: list[dict[str, float]] = field(default_factory=list)
    movers: list[dict[str, Any]] = field(default_factory=list)


async def compare(store: UiStore, kind: Kind, a: str | None, b: str | None) -> Comparison:
    available = await store.rows(_LIST[kind])
    names = [r["v"] for r in available]
    a = a or (names[0] if names else "")
    b = b or (names[-1] if len(names) > 1 else a)
    out = Comparison(kind=kind, available=available, a=a, b=b)
    if not a or not b:
        return out
    old, new = _COLUMNS[kind]
    source = _SOURCE[kind]
    params = {"a": a, "b": b}
    out.summary = await store.one(
        f"SELECT count() AS n, avg({old}) AS mean_a, avg({new}) AS mean_b, avg(shift) AS mean_shift, "
        f"avg(abs(shift)) AS mean_abs_shift, countIf({_SHIFT} > 0) AS up, countIf({_SHIFT} < 0) AS down, "
        f"corr({old}, {new}) AS corr, min({_SHIFT}) AS min_shift, max({_SHIFT}) AS max_shift "
        f"FROM {source}", params)
    if not out.summary.get("n"):
        return out
    out.points = [[r["x"], r["y"]] for r in await store.rows(
        f"SELECT {old} AS x, {new} AS y FROM {source} ORDER BY cityHash64(session_id) LIMIT {{n:UInt32}}",
        params | {"n": SCATTER_POINTS})]
    lo, hi = float(out.summary["min_shift"]), float(out.summary["max_shift"])
    width = (hi - lo) / BINS if hi > lo else 1.0
    counts = await store.rows(
        f"SELECT least(toUInt32(floor(({_SHIFT} - {{lo:Float64}}) / {{w:Float64}})), {{last:UInt32}}) AS bin, "
        f"count() AS n FROM {source} GROUP BY bin ORDER BY bin", params | {"lo": lo, "w": width, "last": BINS - 1})
    by_bin = {int(r["bin"]): int(r["n"]) for r in counts}
    out.histogram = ([{"from": lo + i * width, "to": lo + (i + 1) * width, "n": by_bin.get(i, 0)} for i in range(BINS)]
                     if hi > lo else [{"from": lo, "to": hi, "n": by_bin.get(0, 0)}])
    out.movers = await store.rows(
        f"SELECT session_id, agent_name, group_id, {old} AS a, {new} AS b, shift FROM {source} WHERE {_SHIFT} != 0 "
        f"ORDER BY abs(shift) DESC, session_id LIMIT {{n:UInt32}}", params | {"n": MOVERS})
    for key in ("corr", "mean_a", "mean_b", "mean_shift", "mean_abs_shift"):
        value = out.summary.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            out.summary[key] = None
    return out
