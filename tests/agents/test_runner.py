"""The ReAct loop against a real local chat endpoint with scripted answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.llm import ChatMessage, LLMError, OpenAIChatClient
from agents.missions import Mission, parse_mission
from agents.patterns import ScoredPattern, SuccessPattern
from agents.recording import SessionOpener, StepRecorder
from agents.runner import NO_USER, run_mission, run_rollouts
from schemas.models import Answer, Ask, SessionStatus, Think, UseTool
from tests.agents.support import ChatServer, MemoryOpener


def mission(tmp_path: Path, max_iterations: int = 6, extra: str = "") -> Mission:
    (tmp_path / "notes").mkdir(exist_ok=True)
    (tmp_path / "notes" / "facts.txt").write_text("The capital of France is Paris.\nBread is food.\n")
    text = f"""
name: solver
objective: Compute 17 * 23 and report it
agent_config: {{max_iterations: {max_iterations}, model: test-model, temperature: 0.1}}
tools:
  - name: calculator
  - name: lookup
    config: {{folder: notes}}
success_criteria: [answer is 391]
{extra}
"""
    return parse_mission(text, "mission.yaml", base_dir=tmp_path)


def decision(action: str, value: str = "", tool: str = "", thought: str = "because") -> str:
    doc = {"action": action, "input": value, "thought": thought}
    if tool:
        doc["tool"] = tool
    return json.dumps(doc)


async def run(chat_server: ChatServer, m: Mission, **kwargs: object) -> tuple[object, MemoryOpener]:
    opener = MemoryOpener()
    async with OpenAIChatClient(chat_server.base_url, "default-model", retries=0) as llm:
        result = await run_mission(m, llm, opener, m.toolbox(), **kwargs)  # type: ignore[arg-type]
    return result, opener


def test_doubles_satisfy_the_protocols() -> None:
    opener = MemoryOpener()
    assert isinstance(opener, SessionOpener)


async def test_tool_call_then_answer(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("think", "I need to multiply.", "I have the product.")
    chat_server.script("decide", decision("use_tool", "17*23", tool="calculator"), decision("answer", "391"))
    result, opener = await run(chat_server, mission(tmp_path), group_id="g1")

    rec = opener.sessions[0]
    assert isinstance(rec, StepRecorder)
    assert rec.started == {"agent_name": "solver", "objective": "Compute 17 * 23 and report it", "group_id": "g1",
                           "model": "test-model", "success_criteria": ["answer is 391"],
                           "agent_config": {"max_iterations": "6", "model": "test-model", "temperature": "0.1",
                                            "top_p": "1.0", "explore": "0.0", "max_tokens": "",
                                            "reflection_interval": "3",
                                            "pattern_limit": "3", "cost_per_1k_tokens": "0.0", "prompt_style": "react",
                                            "token_traces": "True"}}
    first, second = rec.steps
    assert first.action == UseTool(tool="calculator", input="17*23")
    assert (first.tool_result, first.error, first.action_input) == ("391", None, "17*23")
    assert first.thought == "I need to multiply."
    assert first.step_metadata == {"decision_thought": "because"}
    assert first.tokens == 30 and second.tokens == 30  # think + decide, from the usage field
    assert first.execution_time_ms >= 0 and first.cost == 0.0
    assert "Result of calculator:\n391" in second.observation
    assert second.action == Answer(text="391")
    assert rec.completed == ("391", SessionStatus.succeeded)
    assert result.status is SessionStatus.succeeded and result.final_answer == "391"  # type: ignore[attr-defined]
    assert (result.steps, result.total_tokens, result.tools_used) == (2, 60, ["calculator"])  # type: ignore[attr-defined]
    assert all(r["model"] == "test-model" and r["temperature"] == 0.1 for r in chat_server.requests)
    assert all("top_p" not in r for r in chat_server.requests)  # 1.0: sampling from every token, not sent


async def test_nucleus_sampling_reaches_the_endpoint(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("think", "Multiply.")
    chat_server.script("decide", decision("answer", "391"))
    m = mission(tmp_path)
    m = m.model_copy(update={"agent_config": m.agent_config.model_copy(update={"top_p": 0.9})})
    result, opener = await run(chat_server, m)
    assert result.final_answer == "391"  # type: ignore[attr-defined]
    assert [r["top_p"] for r in chat_server.requests] == [0.9, 0.9]
    assert opener.sessions[0].started["agent_config"]["top_p"] == "0.9"  # type: ignore[attr-defined]


async def test_reflection_every_three_steps_sees_the_analysis(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", decision("use_tool", "1+1", tool="calculator"),
                       decision("use_tool", "2 +* 2", tool="calculator"),
                       decision("use_tool", "capital France", tool="lookup"),
                       decision("use_tool", "1+1", tool="calculator"),
                       decision("think", "almost"),
                       decision("answer", "Paris"))
    chat_server.script("reflect", "The lookup worked; stop repeating sums.", "Second reflection.")
    result, opener = await run(chat_server, mission(tmp_path, max_iterations=8))
    steps = opener.sessions[0].steps

    assert steps[2].reflection == "The lookup worked; stop repeating sums."
    assert steps[5].reflection is None  # the answer step ends the run: nothing left to reflect for
    assert [s.reflection is not None for s in steps] == [False, False, True, False, False, False]
    assert steps[1].error and steps[1].error.startswith("not an arithmetic expression")
    assert steps[2].tool_result == "facts.txt:1: The capital of France is Paris."
    assert steps[2].tokens == 45  # think + decide + reflect

    reflect_prompts = chat_server.phase_requests("reflect")
    assert len(reflect_prompts) == 1
    prompt = reflect_prompts[0]
    assert "Trajectory analysis after 3 steps:" in prompt
    assert "- steps: 3 of 8 allowed (5 left)" in prompt
    assert "- tools used: calculator x2, lookup x1" in prompt
    assert "- errors: 1 (last: not an arithmetic expression" in prompt
    assert "- efficiency: 0.67" in prompt
    assert "- progress: advancing; 2 useful tool results, 0 repeated actions" in prompt
    # the next thinking prompt carries the reflection forward
    assert "Your latest reflection: The lookup worked" in chat_server.phase_requests("think")[3]
    assert result.status is SessionStatus.succeeded and result.reflections == 1  # type: ignore[attr-defined]


async def test_max_iterations_fails_the_session(chat_server: ChatServer, tmp_path: Path) -> None:
    result, opener = await run(chat_server, mission(tmp_path, max_iterations=2))
    rec = opener.sessions[0]
    assert len(rec.steps) == 2 and all(s.action == Think(note="hmm") for s in rec.steps)
    assert "You noted: hmm" in rec.steps[1].observation
    assert rec.completed == (None, SessionStatus.failed)
    assert result.status is SessionStatus.failed and result.final_answer is None  # type: ignore[attr-defined]


async def test_malformed_decision_is_an_error_step(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", "Sure! I will use the calculator now.", '{"action": "dance"}',
                       '```json\n{"action": "ANSWER", "answer": "391"}\n```')
    result, opener = await run(chat_server, mission(tmp_path))
    first, second, third = opener.sessions[0].steps
    assert first.action == Think(note="malformed decision")
    assert first.error is not None and first.error.startswith("malformed decision: no JSON object in the decision")
    assert first.action_input == "Sure! I will use the calculator now."
    assert second.error == "malformed decision: unknown action 'dance': expected use_tool, answer, ask or think"
    assert "Your last decision could not be used" in second.observation
    assert third.action == Answer(text="391")
    assert result.status is SessionStatus.succeeded and result.errors == 2  # type: ignore[attr-defined]


async def test_tool_errors_and_unknown_tools_are_recorded(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", decision("use_tool", "1/0", tool="calculator"),
                       decision("use_tool", "x", tool="shell"), decision("answer", "done"))
    result, opener = await run(chat_server, mission(tmp_path))
    steps = opener.sessions[0].steps
    assert steps[0].error == "division by zero" and steps[0].tool_result is None
    assert "The tool calculator failed: division by zero" in steps[1].observation
    assert steps[1].error == "unknown tool 'shell'; available tools: calculator, lookup"
    assert result.status is SessionStatus.succeeded  # type: ignore[attr-defined]


async def test_ask_with_and_without_a_user(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", decision("ask", "Which unit?"), decision("answer", "391"))
    _, opener = await run(chat_server, mission(tmp_path))
    steps = opener.sessions[0].steps
    assert steps[0].action == Ask(question="Which unit?") and steps[1].observation == NO_USER

    async def user(question: str) -> str:
        return f"metres, for {question!r}"

    chat_server.script("decide", decision("ask", "Which unit?"), decision("answer", "391"))
    _, opener = await run(chat_server, mission(tmp_path), ask=user)
    steps = opener.sessions[0].steps
    assert steps[0].tool_result == "metres, for 'Which unit?'"
    assert steps[1].observation == "The user answered: metres, for 'Which unit?'"


async def test_success_patterns_reach_the_prompts(chat_server: ChatServer, tmp_path: Path) -> None:
    pattern = SuccessPattern(session_id="old-1", objective="Compute 12 * 11 and report it",
                             actions=["calculator: 12*11", "lookup: multiplication table"],
                             summary="solved in 2 steps using calculator; final answer: 132", reward=0.93)
    chat_server.script("decide", decision("answer", "391"))
    await run(chat_server, mission(tmp_path), patterns=[ScoredPattern(pattern=pattern, similarity=0.8)])
    think = chat_server.phase_requests("think")[0]
    assert "Earlier high-reward runs on similar objectives:" in think
    assert "similarity 0.80, reward 0.93: objective 'Compute 12 * 11 and report it'" in think
    assert "final answer: 132" in think
    decide = chat_server.phase_requests("decide")[0]
    assert "Recommended actions (they worked in similar successful runs):\n- calculator: 12*11\n" in decide
    assert "- lookup: multiplication table" in decide


async def test_llm_failure_ends_the_session_with_error(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.status = 400
    result, opener = await run(chat_server, mission(tmp_path))
    rec = opener.sessions[0]
    assert len(rec.steps) == 1
    assert rec.steps[0].error is not None and "answered HTTP 400" in rec.steps[0].error
    assert rec.completed == (None, SessionStatus.error)
    assert result.status is SessionStatus.error  # type: ignore[attr-defined]


async def test_missing_usage_counts_zero_tokens(tmp_path: Path) -> None:
    with ChatServer(usage={}) as server:
        server.script("decide", decision("answer", "391"))
        result, opener = await run(server, mission(tmp_path))
    assert opener.sessions[0].steps[0].tokens == 0 and result.total_tokens == 0  # type: ignore[attr-defined]


async def test_rollouts_share_a_group(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", *[decision("answer", "391")] * 3)
    opener = MemoryOpener()
    m = mission(tmp_path)
    async with OpenAIChatClient(chat_server.base_url, "default-model", retries=0) as llm:
        results = await run_rollouts(m, llm, opener, m.toolbox(), rollouts=3)
    groups = {s.started["group_id"] for s in opener.sessions}
    assert len(opener.sessions) == 3 and len(groups) == 1 and next(iter(groups)).startswith("solver-")
    assert [r.status for r in results] == [SessionStatus.succeeded] * 3


async def test_recorder_failure_closes_the_session_and_surfaces(chat_server: ChatServer, tmp_path: Path) -> None:
    class Broken(MemoryOpener):
        async def start_session(self, **kwargs: object):  # type: ignore[no-untyped-def,override]
            rec = await super().start_session(**kwargs)  # type: ignore[arg-type]

            async def record_step(**_: object) -> int:
                raise RuntimeError("broker gone")

            rec.record_step = record_step  # type: ignore[method-assign]
            return rec

    opener = Broken()
    m = mission(tmp_path)
    async with OpenAIChatClient(chat_server.base_url, "default-model", retries=0) as llm:
        with pytest.raises(RuntimeError, match="broker gone"):
            await run_mission(m, llm, opener, m.toolbox())
    assert opener.sessions[0].completed == (None, SessionStatus.error)


async def test_cost_follows_tokens(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.script("decide", decision("answer", "391"))
    m = mission(tmp_path)
    m = m.model_copy(update={"agent_config": m.agent_config.model_copy(update={"cost_per_1k_tokens": 2.0})})
    _, opener = await run(chat_server, m)
    assert opener.sessions[0].steps[0].cost == 30 * 2.0 / 1000


async def test_llm_client_retries_server_errors(chat_server: ChatServer) -> None:
    chat_server.fail_next = 2
    chat_server.script("think", "fine")
    async with OpenAIChatClient(chat_server.base_url, "m", retries=2) as llm:
        reply = await llm.chat([ChatMessage(role="user", content="PHASE: think\nhi")])
    assert (reply.text, reply.total_tokens, reply.prompt_tokens) == ("fine", 15, 10)
    assert len(chat_server.requests) == 3
    chat_server.fail_next = 5
    async with OpenAIChatClient(chat_server.base_url, "m", retries=1) as llm:
        with pytest.raises(LLMError, match="answered HTTP 503"):
            await llm.chat([ChatMessage(role="user", content="PHASE: think\nhi")])
    with pytest.raises(LLMError, match="no LLM endpoint configured"):
        OpenAIChatClient("", "m")
    async with OpenAIChatClient("http://127.0.0.1:9/v1", "m", retries=0) as llm:
        with pytest.raises(LLMError, match="unreachable: ConnectError"):
            await llm.chat([ChatMessage(role="user", content="x")])


def test_agents_import_no_pipeline_packages() -> None:
    """agents/ stays a client: importing it pulls in neither streams/, consumers/ nor trainer/."""
    code = ("import sys, agents.runner, agents.cli, agents.patterns, agents.tools; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streams', 'consumers', 'trainer', 'torch')); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
