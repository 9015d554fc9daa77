"""The offered-rate search as pure logic, against fake measurements with a known limit."""

from __future__ import annotations

from typing import Any

import pytest

from bench.rate_search import by_majority, grid_rate, search


def limit_at(capacity: float, calls: list[float]) -> Any:
    def measure(rate: float) -> tuple[bool, dict[str, Any]]:
        calls.append(rate)
        return rate <= capacity, {"p99_ms": rate / 10}
    return measure


def test_coarse_doubling_then_three_bisections_on_the_grid() -> None:
    calls: list[float] = []
    result = search(limit_at(5_000, calls), start=1_000, factor=2.0, refine=3)
    # coarse: 1k, 2k, 4k pass, 8k fails; refine between 4k and 8k: 4k * 2^(4/8), then 2^(2/8), then 2^(3/8)
    assert calls[:4] == [1_000.0, 2_000.0, 4_000.0, 8_000.0]
    assert calls[4:] == [grid_rate(1_000, 2.0, 8, 20), grid_rate(1_000, 2.0, 8, 18), grid_rate(1_000, 2.0, 8, 19)]
    assert calls[4:] == [5_657.0, 4_757.0, 5_187.0]
    assert result.sustained == 4_757.0 and result.failed_at == 5_187.0 and not result.at_ceiling
    assert result.resolution_pct == 9.0
    assert [p.ok for p in result.probes] == [True, True, True, False, False, True, False]
    assert result.probes[3].detail == {"p99_ms": 800.0}


def test_results_are_grid_rates_so_nearby_capacities_agree() -> None:
    results = {search(limit_at(cap, []), start=1_000, refine=3).sustained for cap in (4_800, 5_000, 5_100, 5_180)}
    assert results == {4_757.0}
    finer = search(limit_at(5_000, []), start=1_000, refine=4)
    assert finer.sustained == grid_rate(1_000, 2.0, 16, 37) == 4_967.0 and finer.failed_at == 5_187.0


def test_first_rate_failing_searches_down() -> None:
    calls: list[float] = []
    result = search(limit_at(300, calls), start=1_000, refine=1)
    assert calls == [1_000.0, 500.0, 250.0, 354.0]
    assert result.sustained == 250.0 and result.failed_at == 354.0


def test_nothing_passes_down_to_the_floor() -> None:
    calls: list[float] = []
    result = search(limit_at(10, calls), start=1_000, refine=2, min_rate=100)
    assert calls == [1_000.0, 500.0, 250.0, 125.0]
    assert result.sustained == 0.0 and result.failed_at == 125.0 and result.resolution_pct is None


def test_ceiling_passing_is_reported_as_such() -> None:
    calls: list[float] = []
    result = search(limit_at(1e9, calls), start=1_000, refine=3, max_rate=8_000)
    assert calls == [1_000.0, 2_000.0, 4_000.0, 8_000.0]
    assert result.sustained == 8_000.0 and result.failed_at is None and result.at_ceiling


def test_refining_keeps_the_highest_pass_directly_below_a_fail() -> None:
    outcomes = {1_000.0: True, 2_000.0: False, 1_414.0: False, 1_189.0: True, 1_297.0: False}
    result = search(lambda r: (outcomes[r], {}), start=1_000, refine=3)
    assert [p.rate for p in result.probes] == [1_000.0, 2_000.0, 1_414.0, 1_189.0, 1_297.0]
    assert result.sustained == 1_189.0 and result.failed_at == 1_297.0


def test_progress_lines_and_bad_arguments() -> None:
    said: list[str] = []
    search(limit_at(1_500, []), start=1_000, refine=0, say=said.append)
    assert said == ["offered rate 1,000 events/s (probe 1)", "  1,000 events/s: pass",
                    "offered rate 2,000 events/s (probe 2)", "  2,000 events/s: FAIL"]
    with pytest.raises(ValueError, match="bad search"):
        search(limit_at(1, []), start=1_000, factor=1.0)


def scripted(outcomes: dict[float, list[bool]], calls: list[float]) -> Any:
    """Each rate answers its scripted outcomes in turn (then passes when at or under 5,000)."""
    def measure(rate: float) -> tuple[bool, dict[str, Any]]:
        calls.append(rate)
        queue = outcomes.get(rate, [])
        ok = queue.pop(0) if queue else rate <= 5_000
        return ok, {"n": calls.count(rate), "ok": ok}
    return measure


def test_majority_decides_and_stops_as_soon_as_two_agree() -> None:
    calls: list[float] = []
    decide = by_majority(scripted({1_000.0: [False, True, True], 2_000.0: [True, True]}, calls), 3)
    ok, detail = decide(1_000.0)
    assert ok and calls == [1_000.0] * 3
    assert detail == {"n": 3, "ok": True, "votes": [False, True, True],
                      "other_measurements": [{"n": 1, "ok": False}, {"n": 2, "ok": True}]}
    ok, detail = decide(2_000.0)
    assert ok and calls.count(2_000.0) == 2 and detail["votes"] == [True, True]


def test_a_clear_first_measurement_decides_alone_and_one_vote_is_one_measurement() -> None:
    calls: list[float] = []
    clear = by_majority(scripted({9_000.0: [False]}, calls), 3, clear=lambda ok, d: not ok)
    assert clear(9_000.0) == (False, {"n": 1, "ok": False, "votes": [False]}) and calls == [9_000.0]
    single = by_majority(scripted({1_000.0: [False]}, calls), 1)
    assert single(1_000.0)[0] is False and calls.count(1_000.0) == 1
    with pytest.raises(ValueError, match="odd"):
        by_majority(scripted({}, calls), 2)


def test_one_unlucky_measurement_no_longer_moves_the_search() -> None:
    """A stall fails the first measurement at 4k (capacity 5k): taken at its word the search lands a
    coarse step low; decided by majority it lands where a clean run does."""
    stall = {4_000.0: [False]}
    plain = search(scripted(dict(stall), []), start=1_000, factor=2.0, refine=3)
    assert plain.sustained == grid_rate(1_000, 2.0, 8, 15) == 3_668.0
    calls: list[float] = []
    voted = search(by_majority(scripted({4_000.0: [False]}, calls), 3), start=1_000, factor=2.0, refine=3)
    clean = search(limit_at(5_000, []), start=1_000, factor=2.0, refine=3)
    assert voted.sustained == clean.sustained == 4_757.0 and voted.failed_at == 5_187.0
    assert voted.probes[2].detail["votes"] == [False, True, True] and calls.count(4_000.0) == 3
