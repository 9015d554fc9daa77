"""`art bench proxy` for real with tiny parameters: broker, upstream, proxy, both call paths.

Nothing here is timed: the test checks what the benchmark must get right: every proxied call that
was answered is one step event on the topic, every figure comes with its spread, and the ratio is
refused because the direct (baseline) rounds measured for under 5 s."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_bench_proxy_loses_nothing_prints_spreads_and_refuses_a_short_baseline() -> None:
    out = subprocess.run([sys.executable, "-m", "stack", "bench", "proxy", "--rate", "40", "--seconds", "1",
                          "--repeats", "2", "--concurrency", "4"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert (doc["lost"], doc["duplicates"], doc["failed_calls"]) == (0, 0, 0)
    assert doc["ratio"] is None
    assert doc["ratio_refused"].startswith("no ratio: the baseline measured for 1.")
    assert doc["ratio_refused"].endswith("under the 5 s minimum (measure longer)")
    figures = ("p50_added_ms", "p99_added_ms", "achieved_rate_proxied", "achieved_rate_direct", "calls_per_s",
               "baseline_calls_per_s", "proxy_cpu_ms_per_call", "upstream_cpu_ms_per_call")
    assert set(doc["spread"]) == set(figures)
    for name in figures:
        assert doc["spread"][name]["n"] == 2
        assert doc[name] == pytest.approx(doc["spread"][name]["median"], abs=1e-3)
        assert f"{name}: median " in out.stderr
    assert doc["calls_per_s"] > 0 and doc["baseline_calls_per_s"] > 0
    # the open loop kept its schedule: 40 calls/s offered, 40 calls/s answered on both paths
    assert doc["achieved_rate_direct"] == pytest.approx(40, rel=0.2)
    assert doc["achieved_rate_proxied"] == pytest.approx(40, rel=0.2)


def test_bench_proxy_refuses_bad_options_in_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "stack", "bench", "proxy", "--repeats", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "Invalid value: --repeats and --concurrency must be at least 1" in out.stderr
