"""`art bench ingest`: the highest offered rate the whole pipeline sustains, against raw Kafka.

An open-loop load test (``bench.load``): agent processes emit sessions through the tracking SDK at
a fixed offered rate for ``duration_s``; per trajectory the time from the emit of its last event to
its trajectory, judgment and reward rows in ClickHouse is measured (``bench.pipeline``). A probe
passes when nothing is lost, no trajectory is incomplete, the agents kept their schedule and the
p99 emit-to-reward latency is within ``bound_ms``. ``bench.rate_search`` finds the highest passing
rate on a fixed grid: ``sustained_events_per_s``. The raw baseline (``bench.raw``: aiokafka produce
+ consume of the same bytes on the same schedule, per-event latency under the same bound) is then
searched on the same grid, from that rate upwards, in the same run: ``ratio`` = ours / raw.
``cpu_us_per_event`` (from /proc, per component) is taken from the sustained probe.

Each pipeline rate is decided by the majority of up to ``votes`` measurements (``rate_search.by_majority``):
near the limit one measurement passes and the next fails, and the search would land wherever the
first unlucky one sent it; a first measurement far from the bound (p99 under half or over twice it,
or anything lost) decides alone.

Time: a probe takes ``duration_s`` + one session length + up to ``drain_s``, plus ≈ 10–20 s to start
the fresh stack (pipeline) or broker (raw) each probe gets. Defaults (30 s, 20 steps × 0.25 s, 2k
events/s start, factor 2, 3 refinements, 3 votes) need about 6 pipeline rates (10–12 measurements)
and 8–9 raw probes: ≈ 17–20 minutes a search on a quiet 2-core machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, field_validator

from bench.load import Schedule, Shape
from bench.measure import describe, ratio_fields, repeat, spread
from bench.pipeline import PipelineProbe
from bench.rate_search import SearchResult, by_majority, check_votes, search


class IngestOptions(BaseModel):
    shape: Shape = Field(default_factory=Shape)
    duration_s: float = Field(30.0, gt=0, description="arrivals per offered rate")
    bound_ms: float = Field(2000.0, gt=0, description="p99 emit-to-reward latency bound")
    max_lag_ms: float = Field(250.0, gt=0, description="p99 lateness of the generators against their schedule")
    drain_s: float = Field(10.0, ge=0, description="wait after the last due event for the last rewards")
    give_up_s: float = Field(5.0, gt=0, description="a generator this late stops: the rate is not offered")
    start_rate: float = Field(2000.0, gt=0)
    factor: float = Field(2.0, gt=1)
    refine: int = Field(3, ge=0, le=6)
    max_rate: float = Field(200_000.0, gt=0)
    min_rate: float = Field(250.0, gt=0, description="below this the search gives up: sustained 0")
    processes: int = Field(2, ge=1, description="agent (generator) processes")
    workers: int = Field(1, ge=1)
    sinks: int = Field(1, ge=1)
    partitions: int = Field(6, ge=1, description="session-events partitions (raw topic too)")
    repeats: int = Field(1, ge=1, description="whole searches; medians and spread across them")
    votes: int = Field(3, ge=1, description="pipeline measurements per offered rate, the majority deciding (odd; "
                       "a first one far from the bound decides alone)")
    baseline: bool = True

    _odd_votes = field_validator("votes")(check_votes)


def clear_outcome(bound_ms: float) -> Callable[[bool, dict[str, Any]], bool]:
    """A pipeline measurement beyond doubt: anything lost, or p99 emit-to-reward under half the bound
    or over twice it (a missing p99: rewards missing). Only the close ones are measured again."""
    def clear(ok: bool, record: dict[str, Any]) -> bool:
        p99 = record.get("p99_rewarded_ms")
        return bool(record.get("lost")) or p99 is None or p99 < bound_ms / 2 or p99 > 2 * bound_ms
    return clear


def search_once(opts: IngestOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """One search of the pipeline, then of the raw baseline from the pipeline's result upwards."""
    from bench.raw import measure_raw

    pipeline = PipelineProbe(shape=opts.shape, duration_s=opts.duration_s, processes=opts.processes,
                             workers=opts.workers, sinks=opts.sinks, bound_ms=opts.bound_ms,
                             max_lag_ms=opts.max_lag_ms, drain_s=opts.drain_s, give_up_s=opts.give_up_s, say=say)
    grid: dict[str, Any] = {"factor": opts.factor, "refine": opts.refine, "max_rate": opts.max_rate,
                            "min_rate": opts.min_rate, "say": say}
    say("pipeline: agents (SDK) -> broker -> stream worker -> sink -> ClickHouse")
    try:
        ours = search(by_majority(pipeline, opts.votes, clear_outcome(opts.bound_ms)), start=opts.start_rate, **grid)
    finally:
        pipeline.close()
    out: dict[str, Any] = {"pipeline": ours}
    if opts.baseline:
        say("raw baseline: aiokafka produce + consume, same schedule and bytes")

        def raw_once(rate: float) -> tuple[bool, dict[str, Any]]:
            schedule = Schedule(rate=rate, duration_s=opts.duration_s, shape=opts.shape, tag="raw")
            return measure_raw(rate, schedule, processes=opts.processes, partitions=opts.partitions,
                               bound_ms=opts.bound_ms, max_lag_ms=opts.max_lag_ms, drain_s=opts.drain_s,
                               give_up_s=opts.give_up_s, say=say)

        def raw(rate: float) -> tuple[bool, dict[str, Any]]:
            """A raw probe failed by lost records alone is measured once more on a new broker: a fresh Tansu
            loses an acknowledged record now and then (docs/broker.md), which the SDK re-sends and raw
            aiokafka does not; a broker bug is not the rate's limit. Lost again: it fails."""
            ok, record = raw_once(rate)
            if not ok and record["lost"] and len(record["failed_because"]) == 1:
                say(f"  {record['lost']} acknowledged records lost, nothing else failed: once more on a new broker")
                first = record["lost"]
                ok, record = raw_once(rate)
                record["lost_in_first_try"] = first
            return ok, record

        out["raw"] = search(raw, start=ours.sustained or opts.start_rate, **grid)
    return out


def _best(result: SearchResult) -> dict[str, Any]:
    """The record of the sustained probe ({} when nothing passed)."""
    return next((p.detail for p in result.probes if p.ok and p.rate == result.sustained), {})


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def summarize(runs: list[dict[str, SearchResult]], opts: IngestOptions, wall_s: float) -> dict[str, Any]:
    """The JSON line: medians over repeated searches, their spread, the per-probe records."""
    ours = [r["pipeline"] for r in runs]
    best = [_best(r) for r in ours]
    sustained = [r.sustained for r in ours]
    out: dict[str, Any] = {"sustained_events_per_s": statistics.median(sustained)}
    for key in ("p50_trajectory_ms", "p99_trajectory_ms", "p50_judged_ms", "p99_judged_ms",
                "p50_rewarded_ms", "p99_rewarded_ms"):
        out[key] = _median([b.get(key) for b in best])
    passed = [b for b in best if b]  # no passing probe: nothing to vouch for (null, not a vacuous 0)
    out["lost"] = max((b["lost"] for b in passed), default=None)
    out["duplicated"] = max((b["duplicated"] for b in passed), default=None)
    components = ("agents", "broker", "worker", "sink", "store", "total")
    out["cpu_us_per_event"] = {c: _median([b["cpu_us_per_event"][c] for b in passed]) for c in components}
    spreads = {"sustained_events_per_s": spread(sustained)}
    if any(b.get("p99_rewarded_ms") is not None for b in best):
        spreads["p99_rewarded_ms"] = spread([b["p99_rewarded_ms"] for b in best if b.get("p99_rewarded_ms")])
    out["resolution_pct"] = _median([r.resolution_pct for r in ours])
    out["at_ceiling"] = any(r.at_ceiling for r in ours)
    if opts.baseline:
        raws = [r["raw"] for r in runs]
        raw_best = [_best(r) for r in raws]
        raw_sustained = [r.sustained for r in raws]
        out["raw_sustained_events_per_s"] = statistics.median(raw_sustained)
        out["raw_p99_ms"] = _median([b.get("p99_ms") for b in raw_best])
        out["raw_cpu_us_per_event"] = {c: _median([b["cpu_us_per_event"][c] for b in raw_best if b])
                                       for c in ("generators", "broker", "consumer", "total")}
        out["raw_at_ceiling"] = any(r.at_ceiling for r in raws)
        spreads["raw_sustained_events_per_s"] = spread(raw_sustained)
        baseline_s = min((b.get("emit_s", 0.0) for b in raw_best), default=0.0)
        out.update(ratio_fields(out["sustained_events_per_s"], out["raw_sustained_events_per_s"], baseline_s))
        out["raw_baseline_s"] = baseline_s
    else:
        out.update({"raw_sustained_events_per_s": None, "ratio": None, "ratio_refused": "no ratio: --no-baseline"})
    out["spread"] = {k: v.model_dump() for k, v in spreads.items()}
    out["runs"] = [{"sustained_events_per_s": r["pipeline"].sustained, "failed_at": r["pipeline"].failed_at,
                    **({"raw_sustained_events_per_s": r["raw"].sustained, "raw_failed_at": r["raw"].failed_at}
                       if "raw" in r else {}),
                    "probes": [p.detail for res in r.values() for p in res.probes]} for r in runs]
    out["settings"] = opts.model_dump() | {"cpus": os.cpu_count()}
    out["wall_s"] = round(wall_s, 1)
    return out


def run(opts: IngestOptions, say: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    probe_s = opts.duration_s + opts.shape.session_s + opts.drain_s / 2
    say(f"ingest: {opts.shape.steps} steps × {opts.shape.think_s:.2f} s per session, groups of "
        f"{opts.shape.group_size}, {opts.duration_s:.0f} s per offered rate (≈ {probe_s:.0f} s a probe), "
        f"bound p99 {opts.bound_ms:.0f} ms, {opts.repeats} search(es)")
    runs = repeat(lambda i: search_once(opts, say), opts.repeats, label="search", say=say)
    result = summarize(runs, opts, time.monotonic() - started)
    for i, r in enumerate(result["runs"]):
        for side in ("", "raw_"):
            if f"{side}sustained_events_per_s" in r:
                say(f"search {i + 1} {side or 'pipeline '}sustained {r[f'{side}sustained_events_per_s']:,.0f} events/s"
                    + (f"; {r[f'{side}failed_at']:,.0f} failed" if r[f"{side}failed_at"] else "; ceiling reached"))
    for key in result["spread"]:
        say(describe(key, spread(result["spread"][key]["values"])))
    return result
