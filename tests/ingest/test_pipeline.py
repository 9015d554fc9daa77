"""The whole embedded stack (`art up` in a subprocess) with agents streaming into it."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from agents.tracking import Tracker
from schemas.codec import Codec
from schemas.models import SessionCompleted, SessionEvent, SessionStarted, SessionStatus, StepRecorded, UseTool
from schemas.registry import registry_for
from tests.ingest.helpers import run_agent, wait_for
from tests.ingest.stack import RunningStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("stack")
    with RunningStack(root / "data", env={"ART_STREAM_SESSION_IDLE_TIMEOUT_S": "4"}) as running:
        yield running


def rows(client, sql: str, **params) -> list[tuple]:
    return client.query(sql, parameters=params).result_rows


def counts(client, ids: list[str]) -> tuple[int, ...]:
    return rows(client, """SELECT
        (SELECT count() FROM trajectories WHERE session_id IN {ids:Array(String)}),
        (SELECT count(DISTINCT session_id) FROM trajectories WHERE session_id IN {ids:Array(String)}),
        (SELECT count() FROM steps WHERE session_id IN {ids:Array(String)}),
        (SELECT count(DISTINCT (session_id, seq)) FROM steps WHERE session_id IN {ids:Array(String)}),
        (SELECT count() FROM session_events WHERE session_id IN {ids:Array(String)})""", ids=ids)[0]


async def agents(stack: RunningStack, n: int, steps: int, offset: int = 0) -> list[str]:
    async with Tracker.from_config(stack.cfg) as tracker:
        return list(await asyncio.gather(*(run_agent(tracker, offset + a, steps) for a in range(n))))


def test_fifty_agents_twenty_steps_exact(stack: RunningStack) -> None:
    ids = asyncio.run(agents(stack, 50, 20))
    client = stack.client()
    wait_for(lambda: counts(client, ids)[0] >= 50, timeout_s=90)
    assert counts(client, ids) == (50, 50, 1000, 1000, 1100)
    meta = rows(client, """SELECT step_count, total_tokens, round(total_cost, 6), tools_used, error_count,
        execution_time_ms, status, closed_by, missing_seqs, objective FROM trajectories
        WHERE session_id = {sid:String}""", sid=ids[7])[0]
    assert meta == (20, sum(100 + i for i in range(20)), 0.2, ["tool0", "tool1", "tool2"], 2,
                    sum(10 + i for i in range(20)), "succeeded", "completed", [], "task 7")
    step = rows(client, """SELECT observation, thought, action_kind, tool, action_text, tool_result, error,
        step_metadata, tokens, topic FROM steps WHERE session_id = {sid:String} AND seq = 7""", sid=ids[7])[0]
    assert step == ("obs 7/6", "thinking about 6", "use_tool", "tool0", "in 6", "out 6", "boom",
                    {"agent": "7", "i": "6"}, 106, "art.session-events")
    assert rows(client, "SELECT sum(total_tokens) FROM trajectories WHERE session_id IN {ids:Array(String)}",
                ids=ids)[0][0] == 50 * sum(100 + i for i in range(20))


def _events(sid: str, n_steps: int) -> list[SessionEvent]:
    out = [SessionEvent(session_id=sid, seq=0, agent_name="dup", payload=SessionStarted(objective="dups",
                                                                                        model="m"))]
    out += [SessionEvent(session_id=sid, seq=i + 1, agent_name="dup", payload=StepRecorded(
        step_number=i, observation=f"o{i}", thought="t", action=UseTool(tool="calc", input=str(i)), tokens=i))
        for i in range(n_steps)]
    out.append(SessionEvent(session_id=sid, seq=n_steps + 1, agent_name="dup",
                            payload=SessionCompleted(final_answer="42", status=SessionStatus.succeeded)))
    return out


async def _produce(stack: RunningStack, events: list[SessionEvent]) -> None:
    codec = Codec(registry_for("", stack.data_dir))
    topic = stack.cfg.kafka.topics().session_events.name
    producer = AIOKafkaProducer(bootstrap_servers=stack.info.bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, codec.encode(topic, event), key=event.session_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_duplicated_and_reordered_delivery_gives_identical_result(stack: RunningStack) -> None:
    ordered = [e for i in range(5) for e in _events(f"ordered-{i}", 12)]
    chaotic = [e.model_copy(update={"session_id": e.session_id.replace("ordered", "chaotic")}) for e in ordered]
    chaotic = chaotic + random.Random(3).sample(chaotic, 30)  # 30 duplicates
    random.Random(4).shuffle(chaotic)
    asyncio.run(_produce(stack, ordered))
    asyncio.run(_produce(stack, chaotic))
    client = stack.client()
    o_ids = [f"ordered-{i}" for i in range(5)]
    c_ids = [f"chaotic-{i}" for i in range(5)]
    wait_for(lambda: counts(client, o_ids)[0] == 5 and counts(client, c_ids)[0] == 5, timeout_s=60)
    assert counts(client, o_ids) == counts(client, c_ids) == (5, 5, 60, 60, 70)
    q = """SELECT replaceOne(session_id, {p:String}, ''), step_count, total_tokens, tools_used, final_answer,
           closed_by, missing_seqs, length(payload) FROM trajectories WHERE startsWith(session_id, {p:String})
           ORDER BY session_id"""
    assert rows(client, q, p="ordered") == rows(client, q, p="chaotic")
    sq = """SELECT replaceOne(session_id, {p:String}, ''), seq, observation, tokens FROM steps
            WHERE startsWith(session_id, {p:String}) ORDER BY session_id, seq"""
    assert rows(client, sq, p="ordered") == rows(client, sq, p="chaotic")


def test_bad_input_is_dead_lettered_and_pipeline_keeps_going(stack: RunningStack) -> None:
    codec = Codec(registry_for("", stack.data_dir))
    topic = stack.cfg.kafka.topics().session_events.name
    good = _events("after-bad", 2)
    valid = codec.encode(topic, good[1])
    negative = good[1].model_copy(update={"session_id": "neg", "seq": -3})
    step_first = good[1].model_copy(update={"session_id": "stepfirst", "seq": 0})

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.info.bootstrap)
        await producer.start()
        for raw in (b"garbage bytes", struct.pack(">bI", 0, 424242) + valid[5:],
                    codec.encode(topic, negative), codec.encode(topic, step_first)):
            await producer.send(topic, raw, key=b"bad")
        await producer.flush()
        await producer.stop()

    asyncio.run(send())
    asyncio.run(_produce(stack, good))
    client = stack.client()
    wait_for(lambda: counts(client, ["after-bad"])[0] == 1, timeout_s=60)
    wait_for(lambda: rows(client, "SELECT count() FROM dead_letters WHERE source_topic = {t:String}", t=topic)[0][0]
             >= 4, timeout_s=60)
    reasons = sorted(r[0] for r in rows(client, "SELECT reason FROM dead_letters WHERE source_topic = {t:String}",
                                        t=topic))
    assert len(reasons) == 4
    assert reasons[0].startswith("bad magic byte: expected 0, found 103")
    assert any("unknown schema id 424242" in r for r in reasons)
    assert any("rule violated: negative seq -3" in r for r in reasons)
    assert any("step_recorded at seq 0" in r and "step before start" in r for r in reasons)
    raw = rows(client, "SELECT raw FROM dead_letters WHERE reason LIKE 'bad magic%'")[0][0]
    assert raw == "garbage bytes"
    assert counts(client, ["neg", "stepfirst"]) == (0, 0, 0, 0, 0)


def test_killed_agent_session_closes_by_idle_timeout(stack: RunningStack) -> None:
    async def half_run() -> str:
        async with Tracker.from_config(stack.cfg) as tracker:
            session = await tracker.start_session(agent_name="crashy", objective="never finishes")
            for i in range(3):
                await session.record_step(observation="o", thought="t", action=UseTool(tool="x", input=str(i)))
            return session.session_id

    sid = asyncio.run(half_run())
    client = stack.client()
    wait_for(lambda: counts(client, [sid])[0] == 1, timeout_s=60)
    assert rows(client, "SELECT closed_by, step_count, status, missing_seqs FROM trajectories "
                        "WHERE session_id = {s:String}", s=sid)[0] == ("idle_timeout", 3, "", [])


def test_sql_and_stats_commands_reach_the_running_stack(stack: RunningStack) -> None:
    env = {**stack.env}
    run = lambda *a: subprocess.run([sys.executable, "-m", "stack", *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=60, cwd=stack.data_dir.parent)
    asyncio.run(_produce(stack, _events("for-sql", 3)))
    client = stack.client()
    wait_for(lambda: counts(client, ["for-sql"])[0] == 1, timeout_s=60)
    out = run("sql", "SELECT session_id, step_count AS n FROM trajectories WHERE session_id = 'for-sql'",
              "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.strip().splitlines()] == [{"session_id": "for-sql", "n": 3}]
    csv_out = run("sql", "SELECT 1 AS a, 'x' AS b", "--format", "csv")
    assert csv_out.stdout.splitlines()[-2:] == ["a,b", "1,x"]
    refused = run("sql", "DROP TABLE steps")  # the full attack suite is tests/store/test_attacks.py
    assert refused.returncode == 1 and "not DropQuery. (READONLY)" in refused.stderr
    sneaky = run("sql", "SELECT 1; DROP TABLE steps")
    assert sneaky.returncode == 1 and "Multi-statements are not allowed" in sneaky.stderr
    assert run("sql", "SELECT count() FROM steps", "--format", "csv").returncode == 0
    stats = run("stats")
    assert stats.returncode == 0 and "Total trajectories:" in stats.stdout
