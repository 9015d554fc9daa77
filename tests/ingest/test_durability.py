"""Nothing lost when the whole stack dies: trackers follow a restarted stack, keep every event until the
store has it, and the stream rebuilds open sessions and RULER groups from the store."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from agents.spool import Spool
from agents.tracking import Tracker
from judges import HeuristicJudge, HeuristicRuler
from schemas.codec import Codec
from schemas.models import SessionStatus, TrajectoryCompleted, UseTool
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from stack.ports import ports_file
from tests.ingest.helpers import make_tracker, run_agent, wait_for
from tests.ingest.stack import RunningStack
from tests.ingest.test_sdk import consume_all

AGENTS, GROUP = 16, 4


def steps_of(i: int) -> int:
    return 30 + 15 * (i % GROUP)  # members of a group finish at different times: groups are open at a kill


async def fleet(stack: RunningStack, result: dict[str, object]) -> None:
    """Agents in groups of four recording steps with pauses; stores their session ids once the tracker
    says everything is durable."""

    async def agent(tracker: Tracker, i: int) -> str:
        session = await tracker.start_session(agent_name=f"dura-{i % 3}", objective=f"survive {i}",
                                              group_id=f"dura-g{i // GROUP}", model="m")
        for s in range(steps_of(i)):
            await session.record_step(observation=f"o{s}", thought="t", action=UseTool(tool="calc", input=str(s)),
                                      tokens=s, error="e" if s % 9 == 8 else None)
            await asyncio.sleep(0.4)
        await session.complete("ok", SessionStatus.succeeded)
        return session.session_id

    async with Tracker.from_config(stack.cfg, retry_interval_s=0.3) as tracker:
        result["ids"] = list(await asyncio.gather(*(agent(tracker, i) for i in range(AGENTS))))
        result["durable"] = await tracker.wait_durable(timeout_s=180)
        result["resent"] = tracker.resent


@pytest.mark.slow
def test_whole_stack_killed_twice_during_a_fleet_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stack = RunningStack(data, env={"ART_JUDGE_GROUP_WINDOW_S": "30"})
    stack.start()
    try:
        ports = dict(stack.info.model_dump(include={"bootstrap", "clickhouse_url"}))
        result: dict[str, object] = {}
        agents = threading.Thread(target=lambda: asyncio.run(fleet(stack, result)))
        agents.start()
        stored = lambda sql: stack.client().query(sql).result_rows[0][0]  # noqa: E731
        # kill -9 once the store holds part of the fleet (open sessions), then once some trajectories are
        # stored too (open RULER groups); from this thread: the stack dies with the thread that started it
        wait_for(lambda: stored("SELECT count() FROM session_events") >= 100, timeout_s=90)
        stack.kill()
        stack.start()
        wait_for(lambda: stored("SELECT count() FROM trajectories") >= 2, timeout_s=90)
        stack.kill()
        stack.start()
        agents.join(300)
        assert result["durable"] and result["resent"]
        ids: list[str] = result["ids"]  # type: ignore[assignment]
        assert stack.info.model_dump(include={"bootstrap", "clickhouse_url"}) == ports  # same addresses
        assert list((data / "spool").glob("*.spool")) == []  # everything durable: no spool left
        client = stack.client()
        expected = sorted((sid, steps_of(i), steps_of(i) + 2, sum(range(steps_of(i)))) for i, sid in enumerate(ids))
        wait_for(lambda: client.query("SELECT count() FROM trajectories WHERE session_id IN {ids:Array(String)}",
                                      parameters={"ids": ids}).result_rows[0][0] >= AGENTS, timeout_s=120)
        time.sleep(2)  # any late duplicate would land now
        assert client.query("""SELECT t.session_id, t.step_count, e.n, t.total_tokens FROM trajectories AS t
                INNER JOIN (SELECT session_id, count() AS n FROM session_events GROUP BY session_id) AS e
                USING session_id WHERE session_id IN {ids:Array(String)} AND closed_by = 'completed'
                AND missing_seqs = [] ORDER BY session_id""", parameters={"ids": ids}).result_rows == expected
        assert client.query("SELECT count(), uniqExact(session_id, seq) FROM steps WHERE session_id IN "
                            "{ids:Array(String)}", parameters={"ids": ids}).result_rows == [
            (sum(e[1] for e in expected),) * 2]
        wait_for(lambda: client.query("SELECT count() FROM rewards WHERE session_id IN {ids:Array(String)}",
                                      parameters={"ids": ids}).result_rows[0][0] >= AGENTS, timeout_s=120)
        time.sleep(2)
        trajectories = [Codec(LocalRegistry(data / "registry.json")).decode(bytes(p), expect=TrajectoryCompleted)
                        for (p,) in client.query("SELECT payload FROM trajectories WHERE session_id IN "
                                                 "{ids:Array(String)}", parameters={"ids": ids},
                                                 column_formats={"payload": "bytes"}).result_rows]
        judged = client.query("SELECT session_id, overall FROM judgments WHERE session_id IN {ids:Array(String)}",
                              parameters={"ids": ids}).result_rows
        judge = HeuristicJudge()
        assert sorted(judged) == sorted((t.session_id, judge.judge(t).overall) for t in trajectories)
        groups: dict[str | None, list[TrajectoryCompleted]] = defaultdict(list)
        for t in trajectories:
            groups[t.group_id].append(t)
        expected = sorted((r.session_id, round(r.total, 9), r.group_size) for g in groups.values()
                          for r in HeuristicRuler().score_group(g))
        rewarded = client.query("SELECT session_id, round(total, 9), group_size FROM rewards "
                                "WHERE session_id IN {ids:Array(String)}", parameters={"ids": ids}).result_rows
        assert sorted(rewarded) == expected and {g for _, _, g in rewarded} == {GROUP}
    finally:
        if stack.proc is not None and stack.proc.poll() is None:
            stack.stop()


def _tracker_process(bootstrap: str, prefix: str, spool_dir: str, registry: str, n: int, start_at: float) -> None:
    async def main() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        topics = Topics(prefix=prefix, session_partitions=4)
        async with make_tracker(bootstrap, topics, Path(spool_dir), Path(registry)) as tracker:
            await run_agent(tracker, n, 3)

    asyncio.run(main())


async def test_trackers_starting_together_adopt_each_orphan_spool_once(
        kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    spool_dir, registry = tmp_path / "spool", tmp_path / "registry.json"
    spool_dir.mkdir()
    for i in range(12):  # spools left by trackers that died while their broker was away
        dead = make_tracker(f"127.0.0.1:{_free_port()}", topics, tmp_path / f"dead-{i}", registry,
                            request_timeout_ms=300)
        await dead.start()
        session = await dead.start_session(agent_name="orphan", objective=str(i), session_id=f"orphan-{i}")
        await session.complete(None, SessionStatus.failed)
        await dead.close(timeout_s=0.5)
        (path,) = (tmp_path / f"dead-{i}").glob("*.spool")
        path.rename(spool_dir / path.name)
    assert len(list(spool_dir.glob("*.spool"))) == 12
    start_at = time.time() + 3.0
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_tracker_process, args=(kafka_bootstrap, topics.prefix, str(spool_dir),
                                                        str(registry), n, start_at)) for n in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8  # none died on a spool another one took
    events = await consume_all(kafka_bootstrap, topics.session_events.name, 8 * 5 + 12 * 2, timeout_s=60)
    orphaned = [(e.session_id, e.seq) for e in events if e.session_id.startswith("orphan-")]
    assert sorted(set(orphaned)) == sorted((f"orphan-{i}", s) for i in range(12) for s in (0, 1))
    assert list(spool_dir.glob("*.spool")) == [] and list(spool_dir.glob(".*")) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_kept_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ports_file(data).parent.mkdir(parents=True)
        ports_file(data).write_text(f'{{"broker": {port}}}')
        stack = RunningStack(data)
        out = subprocess.run([sys.executable, "-m", "stack", "up"], env=stack.env, capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert out.returncode == 1
    assert f"port {port} of the broker, kept in {ports_file(data)}" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_spool_created_by_one_tracker_is_never_adopted_by_another(tmp_path: Path) -> None:
    owned = [Spool.create(tmp_path) for _ in range(20)]
    assert [Spool.adopt(s.path) for s in owned] == [None] * 20
    for s in owned:
        s.close()
    assert list(tmp_path.iterdir()) == []
