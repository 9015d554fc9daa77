"""Completions served for a tracked session land in ClickHouse with their exact token ids and logprobs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agents.llm import ChatMessage, OpenAIChatClient
from agents.missions import parse_mission
from agents.runner import run_mission
from consumers.sink import ClickHouseSink
from schemas.codec import Codec
from schemas.models import CompletionTrace, SessionStatus, Think
from schemas.registry import LocalRegistry
from schemas.topics import Topics
from tests.ingest.helpers import make_tracker, scalar
from tests.serving.support import prompt_ids, recompute

pytestmark = pytest.mark.train
MISSION = """
name: served
objective: Compute 17 * 23 and report it
agent_config: {max_iterations: 2, model: champion, temperature: 0.8, max_tokens: 8, reflection_interval: 2}
tools: [{name: calculator}]
"""


@pytest.mark.parametrize("in_clickhouse", [True, False], ids=["decoded-by-clickhouse", "decoded-in-python"])
async def test_served_logprobs_land_in_clickhouse_and_match_a_recomputation(
        server: Any, tiny_model: Path, kafka_bootstrap: str, topics: Topics, store: Any, tmp_path: Path,
        in_clickhouse: bool) -> None:
    messages = [ChatMessage(role="user", content="Objective: compute 2 + 2. Thought:")]
    registry = tmp_path / "registry.json"
    async with OpenAIChatClient(server.url, "base") as llm:
        reply = await llm.chat(messages, temperature=0.9, max_tokens=10, logprobs=True)
        assert reply.token_ids is not None and reply.logprobs is not None and len(reply.token_ids) >= 1
        mission = parse_mission(MISSION, "served.yaml", base_dir=tmp_path)
        async with make_tracker(kafka_bootstrap, topics, tmp_path / "spool", registry) as tracker:
            session = await tracker.start_session(agent_name="probe", objective="one served call", model=reply.model)
            await session.record_step(observation="o", thought=reply.text, action=Think(note="n"), tokens=10,
                                      completions=[CompletionTrace(purpose="think", model=reply.model,
                                                                   token_ids=reply.token_ids,
                                                                   logprobs=reply.logprobs)])
            await session.complete(None, SessionStatus.failed)
            run = await run_mission(mission, llm, tracker, mission.toolbox())  # the ReAct runner on the served model
            await tracker.flush()
    sink = ClickHouseSink(kafka_bootstrap, topics, Codec(LocalRegistry(registry)), store,
                          group_id=f"{topics.prefix}sink", decode_in_clickhouse=in_clickhouse)
    task = asyncio.create_task(sink.run())
    try:
        for _ in range(600):
            if await asyncio.to_thread(scalar, store, "SELECT count() FROM steps") >= 1 + run.steps:
                break
            await asyncio.sleep(0.1)
    finally:
        sink.stop()
        await task

    (trace,) = scalar(store, f"SELECT completions FROM steps WHERE session_id = '{session.session_id}'")
    assert (trace["purpose"], trace["model"], trace["token_ids"]) == ("think", "base", reply.token_ids)
    assert trace["logprobs"] == reply.logprobs  # float32 end to end: bit-exact
    prompt = prompt_ids(tiny_model, [m.model_dump() for m in messages])
    assert trace["logprobs"] == pytest.approx(recompute(tiny_model, prompt, reply.token_ids), abs=1e-4)

    steps = store.query("SELECT thought, completions FROM steps WHERE session_id = {s:String} ORDER BY seq",
                        parameters={"s": run.session_id}).result_rows
    assert len(steps) == run.steps >= 1
    engine = server.engine
    for thought, traces in steps:
        purposes = [t["purpose"] for t in traces]
        assert purposes[:2] == ["think", "decide"] and set(purposes) <= {"think", "decide", "reflect"}
        think = traces[0]
        assert engine.decode(think["token_ids"]).strip() == thought and len(think["logprobs"]) == len(
            think["token_ids"]) >= 1
        assert all(t["model"] == "base" for t in traces)  # no champion in this registry: the base model answers
