"""Open-loop load: sessions of a fixed shape started on a clock, whatever the system does.

Why open loop: a closed loop (each agent waits for its previous send) slows down with the system
under test and so never shows its queueing delay ("coordinated omission"). Here every event has a
due time fixed in advance: groups of ``group_size`` sessions (one RULER group: its rollouts run side
by side, as an agent fleet runs them) start every ``group_interval_s``; each session emits its
start, ``steps`` steps ``think_s`` apart, then its completion. The offered rate is exact:
``events_per_session * group_size / group_interval_s``. Events are emitted in a few processes
(``parts``), each owning every ``parts``-th group. How late each emit ran against its due time is
recorded: a generator that cannot keep its schedule has not offered the rate, and a probe where
that happens fails (``lag_p99_ms`` over the limit).

Arrivals span ``duration_s``; the rate ramps up over the first session length and down over the
last, so the steady offered rate holds for ``duration_s - session_s``.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import multiprocessing as mp
import time
from array import array
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from pydantic import BaseModel, Field

from bench.measure import percentile
from bench.proc import cpu_seconds


class Shape(BaseModel):
    """What one agent run looks like."""

    steps: int = Field(20, ge=1, description="steps per session")
    think_s: float = Field(0.25, ge=0, description="pause between a session's events")
    group_size: int = Field(4, ge=1, description="sessions per RULER group, run side by side")

    @property
    def events_per_session(self) -> int:
        return self.steps + 2  # started, steps, completed

    @property
    def session_s(self) -> float:
        return (self.steps + 1) * self.think_s


class Schedule(BaseModel):
    """Every event's due time (seconds after the start) for one offered rate."""

    rate: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    shape: Shape
    tag: str

    @property
    def groups(self) -> int:
        return max(1, round(self.rate * self.duration_s / (self.shape.events_per_session * self.shape.group_size)))

    @property
    def sessions(self) -> int:
        return self.groups * self.shape.group_size

    @property
    def events(self) -> int:
        return self.sessions * self.shape.events_per_session

    @property
    def group_interval_s(self) -> float:
        return self.shape.events_per_session * self.shape.group_size / self.rate

    def group_start(self, group: int) -> float:
        return group * self.group_interval_s

    @property
    def last_due_s(self) -> float:
        return self.group_start(self.groups - 1) + self.shape.session_s

    def session_id(self, group: int, member: int) -> str:
        return f"{self.tag}-{group}-{member}"

    def group_id(self, group: int) -> str:
        return f"{self.tag}-g{group}"

    def due_by(self, t: float) -> int:
        """Events due in the first ``t`` seconds (for progress lines)."""
        if t < 0:
            return 0
        per, think = self.shape.events_per_session, self.shape.think_s
        started = min(self.groups, math.floor(t / self.group_interval_s) + 1)
        total = 0
        for g in range(started):
            elapsed = t - self.group_start(g)
            total += min(per, math.floor(elapsed / think) + 1 if think else per)
        return total * self.shape.group_size


def step_fields(k: int, steps: int) -> dict[str, Any]:
    """Step ``k`` (1-based) of a session: tool calls of a few hundred bytes, an answer last."""
    from schemas.models import Answer, UseTool

    last = k == steps
    return {"observation": f"observation {k}: " + "the tool returned rows " * 4,
            "thought": f"step {k}: " + "compare the rows and decide " * 3,
            "action": Answer(text=f"answer after {k} steps") if last else UseTool(tool=f"tool{k % 4}",
                                                                                  input=f"query {k}"),
            "tool_result": None if last else f"result {k}", "tokens": 50, "cost": 1e-4, "execution_time_ms": 5}


Emit = Callable[[int, int, int], Awaitable[None]]  # (group, member, k): k = 0 started, 1..steps, steps+1 completed


class Lags(BaseModel):
    """How late emits ran against their due times, and when the first and last happened."""

    emitted: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    first_emit: float
    last_emit: float
    aborted: bool = False


async def run_schedule(schedule: Schedule, part: int, parts: int, emit: Emit, t0: float,
                       give_up_s: float = math.inf) -> Lags:
    """Emit this part's events at their due times (``t0``: wall-clock start); returns the lags.

    Stops early (``aborted``) once an emit runs ``give_up_s`` late: the rate is lost anyway, and an
    overloaded probe should fail in seconds, not after its whole backlog."""
    shape = schedule.shape
    last_k = shape.steps + 1
    due: list[tuple[float, int, int, int]] = []  # (due_s, group, member, k)
    lags = array("d")
    next_group = part
    first = last = 0.0
    aborted = False
    while True:
        now = time.time() - t0
        while next_group < schedule.groups and schedule.group_start(next_group) <= now:
            start = schedule.group_start(next_group)
            for member in range(shape.group_size):
                heapq.heappush(due, (start, next_group, member, 0))
            next_group += parts
        while due and due[0][0] <= now:
            at, group, member, k = heapq.heappop(due)
            emitted_at = time.time()
            if emitted_at - t0 - at > give_up_s:
                aborted = True
                break
            lags.append(emitted_at - t0 - at)
            first = first or emitted_at
            await emit(group, member, k)
            last = time.time()
            if k < last_k:
                heapq.heappush(due, (at + shape.think_s, group, member, k + 1))
        if aborted or (not due and next_group >= schedule.groups):
            break
        upcoming = min(due[0][0] if due else math.inf,
                       schedule.group_start(next_group) if next_group < schedule.groups else math.inf)
        await asyncio.sleep(max(0.0, upcoming - (time.time() - t0)))  # 0: yield to the sender, go on
    values = list(lags)
    return Lags(emitted=len(values), lag_p50_ms=round(1e3 * percentile(values, 50), 1) if values else 0.0,
                lag_p99_ms=round(1e3 * percentile(values, 99), 1) if values else 0.0,
                lag_max_ms=round(1e3 * max(values), 1) if values else 0.0, first_emit=first, last_emit=last,
                aborted=aborted)


# --- processes ---------------------------------------------------------------------------------


class Fleet:
    """Generator processes that import and connect first, then start on one shared clock.

    Each target is called as ``target(conn, *args)``; it sends ``"ready"``, receives ``t0`` and
    finally sends one result dict (or ``{"error": ...}``)."""

    def __init__(self, target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for a in args:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child, *a), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ready(self, timeout_s: float = 120.0) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            if not conn.poll(timeout_s):
                raise RuntimeError(f"generator process {proc.pid} not ready after {timeout_s:.0f} s")
            message = conn.recv()
            if message != "ready":
                raise RuntimeError(f"generator process {proc.pid} failed to start: {message}")

    def go(self, t0: float) -> None:
        for conn in self.conns:
            conn.send(t0)

    def results(self, timeout_s: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout_s
        for conn, proc in zip(self.conns, self.procs, strict=True):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                out.append({"error": f"process {proc.pid} sent no result within {timeout_s:.0f} s"})
                continue
            out.append(conn.recv())
        return out

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()


def serve_part(conn: Connection, setup: Callable[[], Awaitable[Any]],
               run: Callable[[Any, float], Awaitable[dict[str, Any]]],
               teardown: Callable[[Any], Awaitable[None]]) -> None:
    """The child side of ``Fleet``: set up, report ready, wait for t0, run, report the result."""

    async def main() -> None:
        state = None
        try:
            state = await setup()
            conn.send("ready")
            t0 = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            cpu0 = cpu_seconds() or 0.0
            result = await run(state, t0)
            result["cpu_s"] = (cpu_seconds() or 0.0) - cpu0
            conn.send(result)
        except Exception as exc:  # reported to the parent, which fails the probe with it
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
        finally:
            if state is not None:
                await teardown(state)

    asyncio.run(main())


def merge_parts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for the generator processes: counts summed, the worst lag, the span of emits."""
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    if not ok:
        return {"emitted": 0, "errors": errors, "cpu_s": 0.0, "lag_p99_ms": None, "emit_s": 0.0}
    first = min(r["first_emit"] for r in ok if r["first_emit"]) if any(r["first_emit"] for r in ok) else 0.0
    return {"emitted": sum(r["emitted"] for r in ok), "errors": errors, "cpu_s": sum(r["cpu_s"] for r in ok),
            "lag_p50_ms": max(r["lag_p50_ms"] for r in ok), "lag_p99_ms": max(r["lag_p99_ms"] for r in ok),
            "lag_max_ms": max(r["lag_max_ms"] for r in ok),
            "emit_s": round(max(r["last_emit"] for r in ok) - first, 3) if first else 0.0,
            "aborted": any(r.get("aborted") for r in ok),
            **{k: sum(r.get(k, 0) for r in ok) for k in ("sent", "spooled") if any(k in r for r in ok)}}


def failures(record: dict[str, Any], events: int, bound_ms: float, max_lag_ms: float, p99_key: str) -> list[str]:
    """Why a probe did not sustain its rate (empty: it did). Shared by the raw and pipeline probes."""
    reasons = [f"error: {e}" for e in record.get("errors", [])]
    if record.get("aborted") or record["emitted"] < events:
        reasons.append(f"generators emitted {record['emitted']:,} of {events:,} (fell behind their schedule)")
    lag = record.get("lag_p99_ms")
    if lag is None or lag > max_lag_ms:
        reasons.append(f"generators ran late: lag p99 {lag} ms > {max_lag_ms:.0f} ms")
    if record["lost"]:
        reasons.append(f"{record['lost']:,} events lost or not delivered in time")
    p99 = record.get(p99_key)
    if p99 is None or not p99 <= bound_ms:
        reasons.append(f"{p99_key} {p99} > {bound_ms:.0f} ms")
    return reasons
