"""`art bench ui`: the trajectory list's page times on a million synthetic trajectories.

A fresh chDB store gets ``n`` trajectories, two reward versions and one judge version (generated
inside ClickHouse), then every page is timed through the UI's own read path (``ui.store.UiStore``:
the readers-only gateway, as `art ui` without a stack). Baselines in the same run: the reader's
floor (``SELECT 1`` through the same path) and the naive way to page — all columns joined with
their scores, ``ORDER BY … LIMIT 50 OFFSET k`` — for the first and a middle page.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.measure import describe, ratio_fields, spread
from config.settings import ArtConfig
from store.clickhouse import connect, ensure_schema
from ui import trajectories
from ui.filters import Cursor, TrajectoryFilter
from ui.store import UiStore

STATUSES = "['succeeded', 'succeeded', 'succeeded', 'failed', 'error', 'cancelled']"
_FILL = f"""INSERT INTO trajectories (session_id, agent_name, group_id, objective, model, status, started_at,
    completed_at, step_count, total_tokens, total_cost, error_count)
SELECT concat('s-', toString(cityHash64(number))), concat('agent-', toString(number % 20)),
       concat('g-', toString(intDiv(number, 4))), concat('task ', toString(number)),
       concat('model-', toString(number % 3)),
       {STATUSES}[number % 6 + 1], toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number * 1000),
       toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number * 1000 + 500),
       1 + number % 9, 100 + number % 900, 0.001 * (number % 100), number % 3
FROM numbers({{n:UInt64}})"""
_REWARDS = """INSERT INTO rewards (session_id, agent_name, group_id, reward_version, total, advantage, group_size)
SELECT concat('s-', toString(cityHash64(number))), concat('agent-', toString(number % 20)),
       concat('g-', toString(intDiv(number, 4))), {v:String}, (cityHash64(number, {v:String}) % 1000) / 1000,
       ((cityHash64(number, {v:String}) % 2000) - 1000) / 1000, 4
FROM numbers({n:UInt64})"""
_JUDGMENTS = """INSERT INTO judgments (session_id, agent_name, group_id, judge_name, judge_version, overall)
SELECT concat('s-', toString(cityHash64(number))), concat('agent-', toString(number % 20)),
       concat('g-', toString(intDiv(number, 4))), 'heuristic', '1', (cityHash64(number, 'j') % 1000) / 1000
FROM numbers({n:UInt64})"""
_NAIVE = """SELECT t.*, r.total, r.advantage, j.overall FROM trajectories AS t
LEFT JOIN (SELECT * FROM rewards WHERE reward_version = 'ruler@1') AS r ON r.session_id = t.session_id
LEFT JOIN (SELECT * FROM judgments WHERE judge_version = '1') AS j ON j.session_id = t.session_id
ORDER BY t.completed_at DESC, t.session_id DESC LIMIT 50 OFFSET {k:UInt64}"""


def bench_ui(n: int = 1_000_000, repeats: int = 5, workdir: Path | None = None,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data = Path(tmp)
        started = time.perf_counter()
        writer = connect(f"chdb://{data / 'clickhouse'}", "art")
        ensure_schema(writer)
        writer.command(_FILL, parameters={"n": n})
        for version in ("ruler@1", "ruler@2"):
            writer.command(_REWARDS, parameters={"n": n, "v": version})
        writer.command(_JUDGMENTS, parameters={"n": n})
        say(f"stored {n:,} trajectories, {2 * n:,} rewards, {n:,} judgments in {time.perf_counter() - started:.1f} s")
        cfg = ArtConfig.model_validate({"storage": {"data_dir": str(data)}, "judge": {"reward_version": "ruler@1"}})
        store = UiStore(cfg, idle_release_s=3600)
        try:
            return asyncio.run(_measure(store, n, repeats, say))
        finally:
            store.close()


async def _measure(store: UiStore, n: int, repeats: int, say: Callable[[str], None]) -> dict[str, Any]:
    middle = (await store.one("SELECT session_id, completed_at FROM trajectories ORDER BY completed_at DESC, "
                              "session_id DESC LIMIT 1 OFFSET {k:UInt64}", {"k": n // 2}))
    deep = Cursor(completed_at=middle["completed_at"], session_id=middle["session_id"]).text()

    def page(**query: Any) -> Callable[[], Awaitable[Any]]:
        flt = TrajectoryFilter.from_query(query)
        return lambda: trajectories.list_page(store, flt, "heuristic@1", "ruler@1")

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "reader_floor": lambda: store.rows("SELECT 1 AS x"),
        "first_page": page(),
        "agent_status": page(agent="agent-7", status="failed"),
        "reward_range_v2": page(reward_version="ruler@2", reward_min="0.9", reward_max="0.95"),
        "time_window": page(since="2026-01-01T12:00:00", until="2026-01-01T13:00:00"),
        "group": page(group="g-12345"),
        "middle_page_keyset": page(before=deep),
        "trajectory_detail": lambda: trajectories.detail(store, middle["session_id"]),
        "naive_first_page": lambda: store.rows(_NAIVE, {"k": 0}),
        "naive_middle_page": lambda: store.rows(_NAIVE, {"k": n // 2}),
    }
    out: dict[str, Any] = {"trajectories": n, "repeats": repeats}
    for name, run in cases.items():
        await run()  # warm: the first touch of a column reads it from disk
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            await run()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = spread(times)
        say(describe(f"{name:>20}", out[name], " ms"))
    for key, ours, naive in (("ratio_naive_first_page", "first_page", "naive_first_page"),
                             ("ratio_naive_middle_page", "middle_page_keyset", "naive_middle_page")):
        # how many times faster our page is than naive OFFSET paging; both sides must have measured >= 5 s
        measured_s = min(sum(out[ours].values), sum(out[naive].values)) / 1000.0
        out.update(ratio_fields(out[naive].median, out[ours].median, measured_s, key=key))
    return out
