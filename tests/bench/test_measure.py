"""The shared measurement rules: spread around the median, refused ratios, the JSON last line."""

from __future__ import annotations

import json
import math

import pytest

from bench.measure import (
    MIN_BASELINE_S,
    RatioRefused,
    describe,
    emit,
    percentile,
    ratio,
    ratio_fields,
    repeat,
    spread,
)


def test_spread_is_min_max_around_the_median_in_percent() -> None:
    s = spread([90.0, 100.0, 120.0])
    assert (s.n, s.median, s.min, s.max) == (3, 100.0, 90.0, 120.0)
    assert (s.low_pct, s.high_pct, s.within_pct) == (10.0, 20.0, 20.0)
    assert s.values == [90.0, 100.0, 120.0]


def test_spread_of_an_even_count_uses_the_middle_mean_and_one_value_has_none() -> None:
    s = spread([4.0, 1.0, 3.0, 2.0])
    assert s.median == 2.5 and s.low_pct == 60.0 and s.high_pct == 60.0
    one = spread([7.0])
    assert (one.median, one.within_pct) == (7.0, 0.0)


def test_spread_of_a_negative_median_keeps_positive_distances() -> None:
    s = spread([-2.0, -1.0, 0.5])
    assert (s.median, s.low_pct, s.high_pct, s.within_pct) == (-1.0, 100.0, 150.0, 150.0)


def test_spread_of_zero_median_and_of_nothing() -> None:
    assert spread([0.0, 0.0]).within_pct == 0.0
    with pytest.raises(ValueError, match="no measurements"):
        spread([])


def test_describe_prints_the_spread() -> None:
    line = describe("events/s", spread([1000.0, 1100.0, 1200.0]))
    assert line == "events/s: median 1,100.0 (min 1,000.0, max 1,200.0; within 9.1% of median, n=3)"


def test_ratio_refused_below_five_seconds_of_baseline() -> None:
    assert MIN_BASELINE_S == 5.0
    assert ratio(50.0, 200.0, 5.0) == 0.25
    with pytest.raises(RatioRefused, match=r"measured for 4\.99 s, under the 5 s minimum"):
        ratio(50.0, 200.0, 4.99)
    with pytest.raises(RatioRefused, match="measured 0"):
        ratio(50.0, 0.0, 30.0)
    with pytest.raises(RatioRefused):
        ratio(50.0, 200.0, math.nan)


def test_ratio_fields_say_why_a_ratio_is_missing() -> None:
    assert ratio_fields(30.0, 120.0, 12.0) == {"ratio": 0.25}
    refused = ratio_fields(30.0, 120.0, 0.4, key="cpu_ratio")
    assert refused["cpu_ratio"] is None
    assert refused["cpu_ratio_refused"].startswith("no ratio: the baseline measured for 0.40 s")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 99))


def test_repeat_runs_in_order_and_announces_each() -> None:
    said: list[str] = []
    assert repeat(lambda i: i * 10, 3, label="replay", say=said.append) == [0, 10, 20]
    assert said == ["replay 1/3", "replay 2/3", "replay 3/3"]
    with pytest.raises(ValueError, match="runs must be >= 1"):
        repeat(lambda i: i, 0)


def test_emit_writes_one_strict_json_line_with_spreads(capsys: pytest.CaptureFixture[str]) -> None:
    emit({"events_per_s": 5.0, "spread": spread([4.0, 5.0, 6.0]), "p99_ms": math.inf,
          "probes": [{"lag_ms": math.nan}, (1, 2)]})
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["spread"]["within_pct"] == 20.0 and doc["events_per_s"] == 5.0
    assert doc["p99_ms"] is None and doc["probes"] == [{"lag_ms": None}, [1, 2]]
