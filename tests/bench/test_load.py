"""The open-loop schedule as pure logic: exact offered rate, per-session order, parts, giving up."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

from bench.load import Schedule, Shape, failures, merge_parts, run_schedule


def test_schedule_offers_exactly_the_rate_in_groups() -> None:
    s = Schedule(rate=880.0, duration_s=10.0, shape=Shape(steps=20, think_s=0.25, group_size=4), tag="t-")
    # 22 events a session, 88 a group: 880 events/s is 10 groups/s, 100 groups in 10 s
    assert (s.groups, s.sessions, s.events) == (100, 400, 8_800)
    assert s.group_interval_s == pytest.approx(0.1)
    assert s.shape.session_s == pytest.approx(5.25)
    assert s.last_due_s == pytest.approx(9.9 + 5.25)
    assert (s.session_id(7, 3), s.group_id(7)) == ("t--7-3", "t--g7")
    assert s.due_by(-1) == 0 and s.due_by(0.0) == 4  # the first group's starts
    assert s.due_by(0.25) == 4 * (2 + 2)  # group 0 started and stepped once, groups 1 and 2 started
    assert s.due_by(1e6) == s.events


def test_tiny_rates_still_run_one_group() -> None:
    s = Schedule(rate=1.0, duration_s=1.0, shape=Shape(steps=3, think_s=0.0, group_size=4), tag="x")
    assert (s.groups, s.events, s.last_due_s) == (1, 20, 0.0)


async def test_parts_share_the_groups_and_each_session_emits_in_order() -> None:
    s = Schedule(rate=1_600.0, duration_s=0.4, shape=Shape(steps=2, think_s=0.02, group_size=2), tag="p")
    assert s.groups == 80
    seen: dict[tuple[int, int], list[int]] = defaultdict(list)

    def recorder(part: int):  # type: ignore[no-untyped-def]
        async def emit(group: int, member: int, k: int) -> None:
            assert group % 2 == part
            seen[group, member].append(k)
        return emit

    t0 = time.time()
    lags = await asyncio.gather(run_schedule(s, 0, 2, recorder(0), t0), run_schedule(s, 1, 2, recorder(1), t0))
    assert [r.emitted for r in lags] == [320, 320] and not any(r.aborted for r in lags)
    assert len(seen) == s.sessions and all(ks == [0, 1, 2, 3] for ks in seen.values())
    assert all(r.first_emit >= t0 and r.last_emit >= r.first_emit + s.last_due_s - 0.05 for r in lags)
    merged = merge_parts([{**r.model_dump(), "cpu_s": 0.5} for r in lags])
    assert merged["emitted"] == 640 and merged["cpu_s"] == 1.0 and merged["errors"] == []


async def test_a_generator_that_falls_behind_gives_up() -> None:
    s = Schedule(rate=2_000.0, duration_s=1.0, shape=Shape(steps=1, think_s=0.01, group_size=1), tag="slow")

    async def slow(group: int, member: int, k: int) -> None:
        await asyncio.sleep(0.02)  # 50 events/s at most: far behind 2,000

    lags = await run_schedule(s, 0, 1, slow, time.time(), give_up_s=0.2)
    assert lags.aborted and lags.emitted < s.events
    record = merge_parts([{**lags.model_dump(), "cpu_s": 0.0}, {"error": "boom"}])
    assert record["aborted"] and record["errors"] == ["boom"]


def test_a_probe_passes_only_on_time_complete_and_within_the_bound() -> None:
    good = {"emitted": 100, "errors": [], "aborted": False, "lag_p99_ms": 20.0, "lost": 0, "p99_rewarded_ms": 900.0}
    assert failures(good, 100, 2000, 250, "p99_rewarded_ms") == []
    bad = {**good, "emitted": 90, "lag_p99_ms": 300.0, "lost": 3, "p99_rewarded_ms": None, "errors": ["x"]}
    assert failures(bad, 100, 2000, 250, "p99_rewarded_ms") == [
        "error: x", "generators emitted 90 of 100 (fell behind their schedule)",
        "generators ran late: lag p99 300.0 ms > 250 ms", "3 events lost or not delivered in time",
        "p99_rewarded_ms None > 2000 ms"]
    assert failures({**good, "p99_rewarded_ms": 2000.1}, 100, 2000, 250, "p99_rewarded_ms") == [
        "p99_rewarded_ms 2000.1 > 2000 ms"]
