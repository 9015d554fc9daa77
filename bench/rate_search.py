"""The highest offered rate that passes, searched on a fixed geometric grid: coarse, then refine.

Why a fixed grid: the search result can only be one of the grid's rates, so repeated runs on one
machine either agree exactly or differ by one grid step (``factor ** (1 / 2**refine)``: 9% with the
defaults), which is what makes "three runs within 15% of their median" reachable. Coarse steps
multiply (or divide) the rate by ``factor`` until the outcome flips; ``refine`` bisections (in grid
index, i.e. geometric midpoints) then narrow the bracket. Each probe is one full measurement, so
the search spends ``coarse + refine`` measurements in total and reports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


class Probe(BaseModel):
    """One measured offered rate and whether it passed (``detail``: the measurement's own record)."""

    rate: float
    ok: bool
    detail: dict[str, Any] = {}


class SearchResult(BaseModel):
    """``sustained``: the highest passing rate measured (0 when even the lowest failed);
    ``failed_at``: the lowest failing rate above it (None when the ceiling passed)."""

    sustained: float
    failed_at: float | None
    at_ceiling: bool
    probes: list[Probe]

    @property
    def resolution_pct(self) -> float | None:
        """How far the true limit may sit above ``sustained``: the bracket's width in %."""
        if not self.sustained or self.failed_at is None:
            return None
        return round(100.0 * (self.failed_at / self.sustained - 1.0), 1)


Measure = Callable[[float], tuple[bool, dict[str, Any]]]
Clear = Callable[[bool, dict[str, Any]], bool]


def check_votes(votes: int) -> int:
    """``votes`` if a majority of that many always decides (odd, positive); ``ValueError`` otherwise."""
    if votes < 1 or votes % 2 == 0:
        raise ValueError(f"votes must be odd so that a majority decides, not {votes}")
    return votes


def by_majority(measure: Measure, votes: int, clear: Clear | None = None) -> Measure:
    """``measure`` decided by the majority of up to ``votes`` measurements of the same rate.

    Why: near its limit a system passes one measurement and fails the next (a stall, a background
    merge), and a search that takes each outcome at its word lands wherever the first unlucky probe
    sent it. Measuring stops as soon as one outcome holds a majority (two agreeing of three); a first
    measurement that ``clear`` calls beyond doubt decides alone, so rates far from the limit cost one.
    The detail is the last measurement that agrees with the decision, with every outcome (``votes``)
    and the other measurements' records."""
    need = check_votes(votes) // 2 + 1

    def decide(rate: float) -> tuple[bool, dict[str, Any]]:
        outcomes: list[bool] = []
        records: list[dict[str, Any]] = []
        while outcomes.count(True) < need and outcomes.count(False) < need:
            ok, detail = measure(rate)
            outcomes.append(ok)
            records.append(detail)
            if len(outcomes) == 1 and clear is not None and clear(ok, detail):
                break
        decision = outcomes.count(True) > outcomes.count(False)
        last = max(i for i, o in enumerate(outcomes) if o == decision)
        others = [r for i, r in enumerate(records) if i != last]
        return decision, {**records[last], "votes": outcomes, **({"other_measurements": others} if others else {})}

    return decide


def grid_rate(start: float, factor: float, unit: int, index: int) -> float:
    """Rate ``index`` of the grid: ``start * factor ** (index / unit)``, rounded to whole events/s."""
    return float(round(start * factor ** (index / unit)))


def search(measure: Measure, *, start: float, factor: float = 2.0, refine: int = 3, max_rate: float = 1e6,
           min_rate: float = 1.0, say: Callable[[str], None] | None = None) -> SearchResult:
    """Probe rates with ``measure(rate) -> (ok, detail)`` and return the highest that passed."""
    if start <= 0 or factor <= 1 or refine < 0 or min_rate <= 0:
        raise ValueError(f"bad search: start={start} factor={factor} refine={refine} min_rate={min_rate}")
    unit = 2 ** refine
    probes: dict[int, Probe] = {}

    def probe(index: int) -> bool:
        rate = grid_rate(start, factor, unit, index)
        if say:
            say(f"offered rate {rate:,.0f} events/s (probe {len(probes) + 1})")
        ok, detail = measure(rate)
        probes[index] = Probe(rate=rate, ok=ok, detail=detail)
        if say:
            say(f"  {rate:,.0f} events/s: {'pass' if ok else 'FAIL'}")
        return ok

    lo: int | None = None
    hi: int | None = None
    i = 0
    if probe(i):
        lo = i
        while grid_rate(start, factor, unit, i + unit) <= max_rate:
            i += unit
            if not probe(i):
                hi = i
                break
            lo = i
    else:
        hi = i
        while grid_rate(start, factor, unit, i - unit) >= min_rate:
            i -= unit
            if probe(i):
                lo = i
                break
            hi = i
    if lo is not None and hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if probe(mid):
                lo = mid
            else:
                hi = mid
    ordered = list(probes.values())
    return SearchResult(sustained=probes[lo].rate if lo is not None else 0.0,
                        failed_at=probes[hi].rate if hi is not None else None,
                        at_ceiling=lo is not None and hi is None, probes=ordered)
