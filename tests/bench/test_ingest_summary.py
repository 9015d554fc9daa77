"""The ingest JSON from search results (pure logic): medians over searches, spread, guarded ratio."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bench.ingest import IngestOptions, clear_outcome, summarize
from bench.rate_search import Probe, SearchResult


def pipeline_probe(p99: float, cpu: float) -> dict[str, Any]:
    return {"p50_trajectory_ms": 100.0, "p99_trajectory_ms": 300.0, "p50_judged_ms": 200.0, "p99_judged_ms": 400.0,
            "p50_rewarded_ms": 500.0, "p99_rewarded_ms": p99, "lost": 0, "duplicated": 2,
            "cpu_us_per_event": {"agents": cpu, "broker": 1.0, "worker": 2.0, "sink": 3.0, "store": 4.0,
                                 "total": cpu + 10.0}}


def search(sustained: float, failed: float, detail: dict[str, Any]) -> SearchResult:
    return SearchResult(sustained=sustained, failed_at=failed, at_ceiling=False,
                        probes=[Probe(rate=sustained, ok=True, detail=detail), Probe(rate=failed, ok=False)])


def raw_probe(emit_s: float) -> dict[str, Any]:
    return {"p99_ms": 50.0, "emit_s": emit_s,
            "cpu_us_per_event": {"generators": 1.0, "broker": 2.0, "consumer": 3.0, "total": 6.0}}


def test_medians_spread_and_ratio_over_three_searches() -> None:
    runs = [{"pipeline": search(s, s * 1.09, pipeline_probe(p99, cpu)), "raw": search(r, r * 1.09, raw_probe(35.0))}
            for s, p99, cpu, r in ((4_757, 1_500.0, 10.0, 40_000), (5_187, 1_900.0, 20.0, 43_620),
                                   (4_757, 1_700.0, 30.0, 40_000))]
    out = summarize(runs, IngestOptions(), 600.0)
    assert out["sustained_events_per_s"] == 4_757 and out["raw_sustained_events_per_s"] == 40_000
    assert out["ratio"] == round(4_757 / 40_000, 4) and out["raw_baseline_s"] == 35.0
    assert out["p99_rewarded_ms"] == 1_700.0 and out["p99_trajectory_ms"] == 300.0
    assert out["lost"] == 0 and out["duplicated"] == 2
    assert out["cpu_us_per_event"] == {"agents": 20.0, "broker": 1.0, "worker": 2.0, "sink": 3.0, "store": 4.0,
                                       "total": 30.0}
    assert out["spread"]["sustained_events_per_s"]["within_pct"] == 9.0
    assert out["spread"]["p99_rewarded_ms"]["values"] == [1_500.0, 1_900.0, 1_700.0]
    assert [r["sustained_events_per_s"] for r in out["runs"]] == [4_757, 5_187, 4_757]
    assert len(out["runs"][0]["probes"]) == 4 and out["resolution_pct"] == 9.0 and out["wall_s"] == 600.0


def test_short_baseline_gives_no_ratio_and_nothing_passing_vouches_for_nothing() -> None:
    nothing = SearchResult(sustained=0.0, failed_at=250.0, at_ceiling=False, probes=[Probe(rate=250.0, ok=False)])
    out = summarize([{"pipeline": nothing, "raw": search(2_000, 4_000, raw_probe(4.2))}], IngestOptions(), 1.0)
    assert out["sustained_events_per_s"] == 0.0 and out["p99_rewarded_ms"] is None
    assert out["lost"] is None and out["duplicated"] is None and out["cpu_us_per_event"]["total"] is None
    assert out["ratio"] is None and "measured for 4.20 s, under the 5 s minimum" in out["ratio_refused"]


def test_only_close_measurements_are_measured_again() -> None:
    clear = clear_outcome(2_000.0)
    assert clear(True, {"p99_rewarded_ms": 999.0, "lost": 0}) and clear(False, {"p99_rewarded_ms": 4_001.0, "lost": 0})
    assert clear(False, {"p99_rewarded_ms": None, "lost": 0}) and clear(False, {"p99_rewarded_ms": 1_500.0, "lost": 3})
    assert not clear(True, {"p99_rewarded_ms": 1_047.0, "lost": 0})
    assert not clear(False, {"p99_rewarded_ms": 3_248.0, "lost": 0})


def test_votes_must_be_odd() -> None:
    assert IngestOptions().votes == 3
    with pytest.raises(ValidationError, match="votes must be odd so that a majority decides, not 2"):
        IngestOptions(votes=2)
