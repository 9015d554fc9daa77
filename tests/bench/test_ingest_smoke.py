"""`art bench ingest` for real with tiny parameters: a whole stack, SDK agents, the raw baseline.

Nothing here is timed: the bound is generous so the probe passes on a loaded machine, and the test
checks what the benchmark must get right: exact counts, latencies measured for every trajectory,
CPU per component, and a ratio refused because the baseline ran under 5 s."""

from __future__ import annotations

import json

from bench.ingest import IngestOptions, run
from bench.load import Shape
from bench.measure import emit


def test_one_probe_each_side_counts_everything_and_refuses_a_short_baseline(capsys) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []
    opts = IngestOptions(shape=Shape(steps=2, think_s=0.05, group_size=4), duration_s=2.0, bound_ms=60_000,
                         max_lag_ms=5_000, drain_s=45.0, start_rate=96.0, refine=0, max_rate=96.0, min_rate=96.0,
                         processes=1)
    emit(run(opts, said.append))
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert doc["sustained_events_per_s"] == 96.0 and doc["raw_sustained_events_per_s"] == 96.0
    assert doc["at_ceiling"] is True
    ours, raw = doc["runs"][0]["probes"]
    # 96 events/s for 2 s in sessions of 4 events, groups of 4: 12 groups, 48 sessions, 192 events
    assert (ours["system"], ours["events"], ours["sessions"], ours["emitted"]) == ("pipeline", 192, 48, 192)
    assert ours["stored_events"] == 192 and ours["lost"] == 0 and ours["duplicated"] == 0
    assert (ours["trajectory_rows"], ours["judged_rows"], ours["rewarded_rows"]) == (48, 48, 48)
    assert ours["incomplete_trajectories"] == 0 and ours["failed_because"] == []
    assert doc["lost"] == 0 and doc["duplicated"] == 0
    assert 0 < doc["p50_trajectory_ms"] <= doc["p99_trajectory_ms"]
    assert 0 < doc["p50_rewarded_ms"] <= doc["p99_rewarded_ms"]
    cpu = doc["cpu_us_per_event"]
    assert set(cpu) == {"agents", "broker", "worker", "sink", "store", "total"}
    assert all(cpu[c] > 0 for c in ("agents", "worker", "store"))
    assert abs(cpu["total"] - sum(v for k, v in cpu.items() if k != "total")) < 1.0
    assert (raw["system"], raw["events"], raw["emitted"], raw["received"], raw["lost"]) == ("raw", 192, 192, 192, 0)
    assert raw["p99_ms"] is not None and raw["duplicated"] == 0
    assert doc["ratio"] is None
    assert "under the 5 s minimum" in doc["ratio_refused"] and doc["raw_baseline_s"] < 5.0
    assert doc["spread"]["sustained_events_per_s"]["n"] == 1 and doc["settings"]["duration_s"] == 2.0
    assert any(line.startswith("sustained_events_per_s: median 96.0") for line in said)
