"""One pipeline probe: the whole stack (`art up`) under an open-loop load of SDK agents.

How latency is measured, exactly, from ClickHouse columns (no polling enters the numbers):
- emit: ``trajectories.completed_at`` is the ``ts`` of the session's ``SessionCompleted`` event,
  stamped by the SDK when the agent called ``complete()`` (before its queue, linger and send);
- trajectory / judgment / reward visible: ``min(inserted_at)`` of the session's row in
  ``trajectories`` / ``judgments`` / ``rewards``, a ClickHouse ``DEFAULT now64(3)`` evaluated by the
  insert that made the row queryable (the first row if a duplicate came later).
Both clocks are this machine's, so the differences are exact to the millisecond of ``inserted_at``.
A trajectory with no row by the probe's deadline counts as infinitely late. Sessions of one group
run in lockstep, so the reward latency measures the pipeline (judge, regrouping, RULER, sink), not
the spread of rollouts.

CPU per component: ``/proc/<pid>/stat`` of the broker, stream workers, sinks and the `art up`
process itself ("store": the chDB engine and its gateway, plus the supervisor's idle loop),
sampled at the start of the schedule and when the last reward landed (or the deadline); the agent
processes report their own, from the first due event to the SDK's last acknowledgement.

Every probe gets a fresh stack, so no probe carries an earlier one's backlog, state or merges: a
search probes lower rates after higher ones, and a kept stack made those lower rates read slower.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench.load import Fleet, Schedule, Shape, failures, merge_parts, run_schedule, serve_part, step_fields
from bench.measure import percentile
from bench.proc import per_event_us, sample


def sdk_part(conn: Connection, data_dir: str, schedule_json: str, part: int, parts: int, give_up_s: float) -> None:
    """One agent process: the tracking SDK with its defaults, driven by the schedule."""
    from agents.tracking import TrackedSession, Tracker
    from config.settings import load_config
    from schemas.models import SessionStatus

    schedule = Schedule.model_validate_json(schedule_json)
    steps = schedule.shape.steps
    sessions: dict[tuple[int, int], TrackedSession] = {}

    async def setup() -> Tracker:
        tracker = Tracker.from_config(load_config(environ={"ART_STORAGE_DATA_DIR": data_dir}))
        await tracker.start()
        return tracker

    async def run(tracker: Tracker, t0: float) -> dict[str, Any]:
        async def emit(group: int, member: int, k: int) -> None:
            if k == 0:
                sessions[group, member] = await tracker.start_session(
                    agent_name=f"bench-{group % 8}", objective=f"bench task {group}", model="bench",
                    group_id=schedule.group_id(group), session_id=schedule.session_id(group, member))
            elif k <= steps:
                await sessions[group, member].record_step(**step_fields(k, steps))
            else:
                await sessions.pop((group, member)).complete(f"answer {group}", SessionStatus.succeeded)

        lags = await run_schedule(schedule, part, parts, emit, t0, give_up_s)
        await tracker.flush(60.0)
        return {**lags.model_dump(), "sent": tracker.sent, "spooled": tracker.spooled}

    async def teardown(tracker: Tracker) -> None:
        await tracker.close(timeout_s=10.0)

    serve_part(conn, setup, run, teardown)


class StackUnderTest:
    """`art up` in its own process group on a fresh data directory, warmed up end to end."""

    def __init__(self, *, workers: int, sinks: int, shape: Shape, say: Callable[[str], None]) -> None:
        self.workers, self.sinks, self.shape, self.say = workers, sinks, shape, say
        self.data_dir = Path(tempfile.mkdtemp(prefix="art-bench-ingest-"))
        self.proc: Any = None
        self.client: Client | None = None
        self.info: Any = None
        self._reader = ExitStack()

    def start(self, timeout_s: float = 180.0) -> StackUnderTest:
        from config.settings import load_config
        from schemas.runtime import read_stack_info
        from stack import processes
        from store.clickhouse import reader

        started = time.monotonic()
        env = {**os.environ, "ART_STORAGE_DATA_DIR": str(self.data_dir),
               "ART_JUDGE_ROLLOUTS_PER_GROUP": str(self.shape.group_size)}
        env.pop("ART_KAFKA_BOOTSTRAP", None)  # the embedded broker, whatever the caller's shell says
        env.pop("ART_CLICKHOUSE_DSN", None)
        self.proc = processes.spawn([sys.executable, "-m", "stack", "up", "--workers", str(self.workers),
                                     "--sinks", str(self.sinks)], log_path=self.data_dir / "up.log", env=env)
        need = {f"worker-{i}" for i in range(self.workers)} | {f"sink-{i}" for i in range(self.sinks)} | {"broker"}
        while (info := read_stack_info(self.data_dir)) is None or not need <= set(info.children):
            if self.proc.poll() is not None or time.monotonic() - started > timeout_s:
                raise RuntimeError(f"`art up` did not start (see {self.data_dir / 'up.log'})")
            time.sleep(0.2)
        self.info = info
        try:  # the stack's gateway, as any reader reaches it (read-only, decided by ClickHouse)
            self.client = self._reader.enter_context(reader(load_config(environ={
                "ART_STORAGE_DATA_DIR": str(self.data_dir)})))
            self._warm_up(timeout_s - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        self.say(f"  stack up and warm in {time.monotonic() - started:.0f} s")
        return self

    def _warm_up(self, timeout_s: float) -> None:
        """One group end to end: workers and sinks have joined their groups, rewards land."""
        schedule = Schedule(rate=1000.0, duration_s=0.01, shape=Shape(steps=1, think_s=0.0,
                                                                     group_size=self.shape.group_size), tag="warm")
        fleet = Fleet(sdk_part, [(str(self.data_dir), schedule.model_dump_json(), 0, 1, 60.0)])
        try:
            fleet.ready()
            fleet.go(time.time())
            errors = [r["error"] for r in fleet.results(60.0) if "error" in r]
            if errors:
                raise RuntimeError(f"warm-up agent failed: {errors[0]}")
        finally:
            fleet.stop()
        deadline = time.monotonic() + timeout_s
        while self.count("rewards", "warm-") < schedule.sessions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up rewards did not land in {timeout_s:.0f} s (see {self.data_dir}/logs)")
            time.sleep(0.3)

    def pids(self) -> dict[str, list[int]]:
        from schemas.runtime import read_stack_info

        info = read_stack_info(self.data_dir)
        assert info is not None, "the stack under test is gone"
        kids = info.children
        return {"broker": [kids["broker"]], "worker": [v for k, v in kids.items() if k.startswith("worker")],
                "sink": [v for k, v in kids.items() if k.startswith("sink")], "store": [info.pid]}

    @property
    def store(self) -> Client:
        """The started stack's read-only client."""
        assert self.client is not None, "the stack under test is not started"
        return self.client

    def count(self, table: str, tag: str) -> int:
        return int(self.store.query(f"SELECT count() FROM {table} WHERE startsWith(session_id, {{tag:String}})",
                                     parameters={"tag": tag}).result_rows[0][0])

    def stop(self) -> None:
        from stack import processes

        self._reader.close()
        if self.proc is not None:
            processes.stop(self.proc, grace_s=30.0)
        shutil.rmtree(self.data_dir, ignore_errors=True)


_LATENCY = """
SELECT t.session_id, t.emitted_us, t.traj_ms, j.judged_ms, r.rewarded_ms, t.steps, t.missing, t.closed_by
FROM (SELECT session_id, toUnixTimestamp64Micro(any(completed_at)) AS emitted_us,
             toUnixTimestamp64Milli(min(inserted_at)) AS traj_ms, any(step_count) AS steps,
             max(length(missing_seqs)) AS missing, any(closed_by) AS closed_by
      FROM trajectories WHERE startsWith(session_id, {tag:String}) GROUP BY session_id) AS t
LEFT JOIN (SELECT session_id, toUnixTimestamp64Milli(min(inserted_at)) AS judged_ms FROM judgments
           WHERE startsWith(session_id, {tag:String}) GROUP BY session_id) AS j ON j.session_id = t.session_id
LEFT JOIN (SELECT session_id, toUnixTimestamp64Milli(min(inserted_at)) AS rewarded_ms FROM rewards
           WHERE startsWith(session_id, {tag:String}) GROUP BY session_id) AS r ON r.session_id = t.session_id
"""
_COUNTS = """
SELECT (SELECT count() FROM session_events WHERE startsWith(session_id, {tag:String})),
       (SELECT uniqExact(session_id, seq) FROM session_events WHERE startsWith(session_id, {tag:String})),
       (SELECT count() - uniqExact(session_id) FROM trajectories WHERE startsWith(session_id, {tag:String})),
       (SELECT count() - uniqExact(session_id) FROM judgments WHERE startsWith(session_id, {tag:String})),
       (SELECT count() - uniqExact(session_id) FROM rewards WHERE startsWith(session_id, {tag:String}))
"""


def latencies(client: Client, tag: str, sessions: int, steps: int) -> dict[str, Any]:
    """p50/p99 of emit -> trajectory / judgment / reward rows, and the store's exactness counts."""
    rows = client.query(_LATENCY, parameters={"tag": tag}).result_rows
    series: dict[str, list[float]] = {"trajectory": [], "judged": [], "rewarded": []}
    incomplete = 0
    for _, emitted_us, *visible, n_steps, missing, closed_by in rows:
        for name, ms in zip(series, visible, strict=True):
            series[name].append(ms - emitted_us / 1000.0 if ms else math.inf)  # LEFT JOIN miss: 0
        incomplete += n_steps != steps or missing > 0 or closed_by != "completed"
    out: dict[str, Any] = {}
    for name, values in series.items():
        values += [math.inf] * (sessions - len(rows))
        out[f"p50_{name}_ms"] = _ms(percentile(values, 50))
        out[f"p99_{name}_ms"] = _ms(percentile(values, 99))
        out[f"{name}_rows"] = sum(1 for v in values if v != math.inf)
    events, distinct, *dups = client.query(_COUNTS, parameters={"tag": tag}).result_rows[0]
    out.update({"stored_events": int(distinct), "duplicated": int(events - distinct) + int(sum(dups)),
                "incomplete_trajectories": int(incomplete)})
    return out


def _ms(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 1)


class PipelineProbe:
    """Measures each offered rate on a fresh stack: an earlier probe's sessions (the worker's state
    table and its periodic full scans), its rows and their merges would otherwise load the next probe,
    and a search's lower rates come after its higher ones."""

    def __init__(self, *, shape: Shape, duration_s: float, processes: int, workers: int, sinks: int,
                 bound_ms: float, max_lag_ms: float, drain_s: float, give_up_s: float,
                 say: Callable[[str], None]) -> None:
        self.shape, self.duration_s, self.processes = shape, duration_s, processes
        self.workers, self.sinks = workers, sinks
        self.bound_ms, self.max_lag_ms, self.drain_s, self.give_up_s = bound_ms, max_lag_ms, drain_s, give_up_s
        self.say = say
        self.stack: StackUnderTest | None = None
        self.run_id = uuid.uuid4().hex[:6]
        self.n = 0

    def close(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def __call__(self, rate: float) -> tuple[bool, dict[str, Any]]:
        self.n += 1
        schedule = Schedule(rate=rate, duration_s=self.duration_s, shape=self.shape, tag=f"b{self.run_id}p{self.n}-")
        if self.stack is None:
            self.stack = StackUnderTest(workers=self.workers, sinks=self.sinks, shape=self.shape, say=self.say).start()
        stack = self.stack
        fleet = Fleet(sdk_part, [(str(stack.data_dir), schedule.model_dump_json(), i, self.processes, self.give_up_s)
                                 for i in range(self.processes)])
        try:
            fleet.ready()
            pids = stack.pids()
            t0 = time.time() + 0.5
            fleet.go(t0)
            time.sleep(max(0.0, t0 - time.time()))
            cpu0 = sample(pids)
            self.say(f"  {schedule.events:,} events in {schedule.sessions:,} sessions over "
                     f"{schedule.last_due_s:.0f} s, {self.processes} agent processes")
            while time.time() < t0 + schedule.last_due_s:
                time.sleep(min(5.0, max(0.0, t0 + schedule.last_due_s - time.time())))
                self._progress(stack, schedule, t0)
            agents = merge_parts(fleet.results(self.give_up_s + 120.0))
        finally:
            fleet.stop()
        deadline = t0 + schedule.last_due_s + self.drain_s
        while stack.count("rewards", schedule.tag) < schedule.sessions and time.time() < deadline:
            time.sleep(0.25)
        done_at = time.time()
        cpu1 = sample(pids)
        if stack.pids() != pids:
            agents["errors"] = [*agents["errors"], "a stack process restarted during the probe"]
        record: dict[str, Any] = {"system": "pipeline", "rate": rate, "events": schedule.events,
                                  "sessions": schedule.sessions, **agents,
                                  **latencies(stack.store, schedule.tag, schedule.sessions, self.shape.steps),
                                  "last_reward_after_s": round(done_at - t0 - schedule.last_due_s, 2)}
        record["lost"] = schedule.events - record["stored_events"]
        cpu = per_event_us(cpu0, cpu1, schedule.events)
        cpu["agents"] = round(1e6 * agents["cpu_s"] / schedule.events, 1)
        cpu["total"] = round(cpu["total"] + cpu["agents"], 1)
        record["cpu_us_per_event"] = {k: cpu[k] for k in ("agents", "broker", "worker", "sink", "store", "total")}
        reasons = failures(record, schedule.events, self.bound_ms, self.max_lag_ms, p99_key="p99_rewarded_ms")
        if record["incomplete_trajectories"]:
            reasons.append(f"{record['incomplete_trajectories']} trajectories with missing or extra steps")
        record["failed_because"] = reasons
        self.say(f"  p99 trajectory {record['p99_trajectory_ms']} ms, judged {record['p99_judged_ms']} ms, "
                 f"rewarded {record['p99_rewarded_ms']} ms; lost {record['lost']}, duplicated "
                 f"{record['duplicated']}, lag p99 {record['lag_p99_ms']} ms, cpu {cpu['total']:.0f} µs/event"
                 + (f" -> {'; '.join(reasons)}" if reasons else ""))
        self.close()
        return not reasons, record

    def _progress(self, stack: StackUnderTest, schedule: Schedule, t0: float) -> None:
        elapsed = time.time() - t0
        self.say(f"  t={elapsed:4.0f}s offered {schedule.due_by(elapsed):,} | stored "
                 f"{stack.count('session_events', schedule.tag):,} | trajectories "
                 f"{stack.count('trajectories', schedule.tag):,} | rewards {stack.count('rewards', schedule.tag):,}")
