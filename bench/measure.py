"""What every benchmark shares: repeated runs, median and spread, guarded ratios, the JSON last line.

Why one module: a number quoted without its spread cannot steer work (one afternoon gave a raw
baseline of 61k, 242k and 307k events/s for the same command), and a ratio whose baseline ran for
a fraction of a second measures start-up and scheduling noise, not throughput. So every benchmark
repeats, reports min/max around the median, and asks ``ratio`` for its ratio, which refuses when
the baseline measured for less than ``MIN_BASELINE_S``. Progress goes to stderr; the last line on
stdout is one JSON object (``emit``), so scripts can read ``tail -1``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

MIN_BASELINE_S = 5.0
T = TypeVar("T")


class Spread(BaseModel):
    """Median of repeated measurements and how far the runs sit from it (``within_pct``: all runs are
    within that % of the median, the figure a stability target like "within 15%" is checked on)."""

    n: int
    median: float
    min: float
    max: float
    low_pct: float
    high_pct: float
    within_pct: float
    values: list[float]


class RatioRefused(ValueError):
    """A ratio was asked for against a baseline that did not measure long enough (or measured nothing)."""


def spread(values: Sequence[float]) -> Spread:
    """Median, min/max and their distance from the median in % of its size (0 when the median is 0;
    a difference such as "latency added" can have a negative median, the distances stay positive)."""
    if not values:
        raise ValueError("spread of no measurements")
    med = statistics.median(values)
    lo, hi = min(values), max(values)

    def pct(x: float) -> float:
        return round(100.0 * x / abs(med), 1) if med else 0.0

    low, high = pct(med - lo), pct(hi - med)
    return Spread(n=len(values), median=med, min=lo, max=hi, low_pct=low, high_pct=high,
                  within_pct=max(low, high), values=list(values))


def describe(name: str, s: Spread, unit: str = "") -> str:
    """One progress line: ``name: median 1,234 unit (min 1,200, max 1,300; within 4.1% of median, n=3)``."""
    return (f"{name}: median {s.median:,.1f}{unit} (min {s.min:,.1f}, max {s.max:,.1f}; "
            f"within {s.within_pct}% of median, n={s.n})")


def ratio(ours: float, baseline: float, baseline_seconds: float) -> float:
    """``ours / baseline``, refused when the baseline measured for less than ``MIN_BASELINE_S`` seconds."""
    if not baseline_seconds >= MIN_BASELINE_S:
        raise RatioRefused(f"no ratio: the baseline measured for {baseline_seconds:.2f} s, "
                           f"under the {MIN_BASELINE_S:.0f} s minimum (measure longer)")
    if baseline <= 0 or not math.isfinite(baseline):
        raise RatioRefused(f"no ratio: the baseline measured {baseline}")
    return ours / baseline


def ratio_fields(ours: float, baseline: float, baseline_seconds: float, key: str = "ratio") -> dict[str, Any]:
    """``{key: r}``, or ``{key: None, key_refused: why}`` so the JSON says why a ratio is absent."""
    try:
        return {key: round(ratio(ours, baseline, baseline_seconds), 4)}
    except RatioRefused as exc:
        return {key: None, f"{key}_refused": str(exc)}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted ``values``; nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def progress(message: str) -> None:
    """Progress for humans: stderr, timestamped, flushed (stdout is kept for the JSON line)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def repeat(measure: Callable[[int], T], runs: int, label: str = "run",
           say: Callable[[str], None] = progress) -> list[T]:
    """Call ``measure(i)`` for i in 0..runs-1, announcing each run; returns the results in order."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, not {runs}")
    out: list[T] = []
    for i in range(runs):
        say(f"{label} {i + 1}/{runs}")
        out.append(measure(i))
    return out


def emit(result: dict[str, Any]) -> None:
    """Print ``result`` as the one JSON object on the last stdout line (strict JSON: a number that
    is not finite, such as the p99 of a run where rows never arrived, is written as null)."""
    sys.stdout.write(json.dumps(_plain(result), allow_nan=False) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
