"""The compact prompt style: lenient parsing, one call per step, and the transcript contract — the
trainer rebuilds, from the recorded steps alone, exactly the chat the runner sent the model."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from agents.compact import (
    EXAMPLES,
    FORMAT_REMINDER,
    STOP,
    example_for,
    explore_head,
    parse_reply,
    prompt_prefix,
    tool_observation,
)
from agents.llm import OpenAIChatClient
from agents.missions import AgentConfig, ToolSpec
from agents.prompts import DecisionError
from agents.runner import run_mission
from agents.suite import SuiteMission, build_suite, check_outcome, prepare_sandbox
from agents.tools.base import build_toolbox
from schemas.transcript import PROMPT_PREFIX_KEY
from tests.agents.support import MemoryOpener, MemoryRecorder
from tests.learning.support import StandIn, oracle
from trainer.datasets import conversation
from trainer.windows import WindowStep, WindowTrajectory

TOOLS = ["calculator", "file_read", "file_write"]


@pytest.mark.parametrize(("text", "action", "tool", "value", "thought"), [
    ("calculator: 6 * 7 + 1", "use_tool", "calculator", "6 * 7 + 1", ""),
    ("You: calculator: (3+4)*(2+1)", "use_tool", "calculator", "(3+4)*(2+1)", ""),
    ("TOOL Calculator: 12*3", "use_tool", "calculator", "12*3", ""),
    ("calculator(12*3)", "use_tool", "calculator", "12*3", ""),
    ("I need the file.\nfile_read: data/stock.txt\nResult: 5", "use_tool", "file_read", "data/stock.txt",
     "I need the file."),
    ('file_write: {"path": "out/a.txt", "content": "7"}', "use_tool", "file_write",
     '{"path": "out/a.txt", "content": "7"}', ""),
    ("answer: 391", "answer", "", "391", ""),
    ("ANSWER: 391", "answer", "", "391", ""),
    ("**Answer:** 42", "answer", "", "42", ""),
    ("Breaking it down:\nassistant: final answer: 17", "answer", "", "17", "Breaking it down:"),
])
def test_parse_reply(text: str, action: str, tool: str, value: str, thought: str) -> None:
    d = parse_reply(text, TOOLS)
    assert (d.action, d.tool, d.input, d.thought) == (action, tool, value, thought)


@pytest.mark.parametrize(("text", "message"), [
    ("3 * 4 = 12, so the answer is 12.", "no line starts with a tool name (calculator, file_read, file_write)"),
    ("TOOL: 9 * 6 + 1", "no line starts with a tool name"),
    ("fetch: 8 x 6", "no line starts with a tool name"),
    ("answer:", "the answer line has no answer"),
    ("calculator:", "the calculator line has no input"),
])
def test_parse_reply_refuses(text: str, message: str) -> None:
    with pytest.raises(DecisionError, match=re.escape(message)):
        parse_reply(text, TOOLS)


def _window_trajectory(recorder: MemoryRecorder) -> WindowTrajectory:
    steps = [WindowStep(step_number=i, observation=s.observation, thought=s.thought, action_kind=s.action.kind,
                        tool=getattr(s.action, "tool", ""), action_input=s.action_input, tool_result=s.tool_result,
                        error=s.error) for i, s in enumerate(recorder.steps, start=1)]
    return WindowTrajectory(session_id=recorder.session_id, agent_name="a", group_id=None, objective="o",
                            agent_config=recorder.started["agent_config"], reward_version="v", total=1.0,
                            advantage=0.0, steps=steps)


async def test_trainer_rebuilds_the_exact_chat_the_runner_sent(tmp_path: Path) -> None:
    chain: SuiteMission = next(m for m in build_suite("train") if m.family == "chain")

    def stumbling(mission: SuiteMission, step: int) -> str:
        if step == 0:
            return "Let me think about the file first."  # malformed: no action line
        if step == 1:
            return "calculator: 1/0"  # a tool error
        return "Sure.\n" + oracle(mission, step - 2)

    with StandIn([chain], lambda model: stumbling) as server:
        box = prepare_sandbox(chain, tmp_path / "box")
        mission = chain.mission(box, AgentConfig(model="m", prompt_style="compact"))
        mission = mission.model_copy(update={"agent_config": mission.agent_config.model_copy(
            update={"max_iterations": 8})})  # room for the two mistakes
        opener = MemoryOpener()
        async with OpenAIChatClient(server.base_url, "m") as llm:
            result = await run_mission(mission, llm, opener, mission.toolbox())
    assert check_outcome(chain, result.final_answer, box) and result.steps == 6
    recorder = opener.sessions[0]
    prefix = [m.model_dump() for m in prompt_prefix(mission.toolbox())]
    assert json.loads(recorder.started["agent_config"][PROMPT_PREFIX_KEY]) == prefix
    assert recorder.started["agent_config"]["prompt_style"] == "compact"
    example = example_for(mission.toolbox())
    assert example[1] == ("assistant", "file_read: data/apples.txt")  # the write example fits this toolbox
    assert len(prefix) == 1 + len(example) and 'file_write: {"path": "<file path>"' in prefix[0]["content"]
    chat = conversation(_window_trajectory(recorder))
    sent = [r["messages"] for r in server.requests]
    assert len(sent) == 6 and all(r["stop"] == STOP for r in server.requests)
    for i, messages in enumerate(sent):  # request i is the chat up to step i's observation
        assert messages == [{"role": m["role"], "content": m["content"]} for m in chat[: len(prefix) + 1 + 2 * i]]
    assert [m["train"] for m in chat[: len(prefix)]] == [False] * len(prefix)  # the example is never a target
    said = [m for m in chat[len(prefix):] if m["role"] == "assistant"]
    assert [m["content"] for m in said] == [
        "Let me think about the file first.", "calculator: 1/0", f"file_read: {next(iter(chain.files))}",
        f"calculator: {chain.answer}", said[4]["content"], f"answer: {chain.answer}"]
    assert [m["train"] for m in said] == [False, False, True, True, True, True]  # mistakes are context only
    assert said[4]["content"].startswith("file_write: {")
    seen = [m["content"] for m in chat[len(prefix):] if m["role"] == "user"]
    assert seen[0] == f"Task: {chain.objective}" and seen[1].startswith("Error: no line starts with a tool name")
    assert seen[1].endswith(f". {FORMAT_REMINDER}\nTask: {chain.objective}")  # every later turn restates the task
    assert seen[2] == f"Error: division by zero\nTask: {chain.objective}"
    assert seen[3] == f"Result: {chain.files[next(iter(chain.files))].strip()}\nTask: {chain.objective}"
    assert recorder.steps[2].step_metadata["raw_reply"].startswith("Sure.\nfile_read")


EXAMPLE_FILES = {"data/apples.txt": "21\n", "facts/shop.txt": "price of a teapot: 15 coins\n"}
TOOL_CONFIGS = {"lookup": {"folder": "facts"}}


@pytest.mark.parametrize("needs", [needs for needs, _ in EXAMPLES], ids=lambda n: "+".join(sorted(n)))
async def test_every_worked_example_is_what_the_real_tools_do(needs: frozenset[str], tmp_path: Path) -> None:
    """An example teaches by being copied: each of its action lines, run through the real tools on the files
    it mentions, gives exactly the result it shows, it calls every tool of its set, and it is the one a
    session with exactly those tools is shown (so a larger set is never shadowed by a smaller one)."""
    for rel, text in EXAMPLE_FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    box = build_toolbox([ToolSpec(name=n, config=TOOL_CONFIGS.get(n, {})) for n in sorted(needs)], tmp_path)
    turns = example_for(box)
    assert turns == dict(EXAMPLES)[needs]
    task = turns[0][1].removeprefix("Task: ")
    called = []
    for (_, said), (_, seen) in zip(turns[1:-1:2], turns[2::2], strict=True):
        decision = parse_reply(said, box.names())
        assert decision.action == "use_tool" and decision.tool is not None
        called.append(decision.tool)
        assert seen == tool_observation(await box.call(decision.tool, decision.input), task)
    assert sorted(called) == sorted(needs) and turns[-1][1].startswith("answer: ")


def test_the_chain_tools_are_shown_a_write() -> None:
    chain = next(m for m in build_suite("heldout", 1) if m.family == "chain")
    said = [text for role, text in example_for(chain.mission(Path("."), AgentConfig(model="m")).toolbox())
            if role == "assistant"]
    assert said == ["file_read: data/apples.txt", "calculator: 21 * 2",
                    'file_write: {"path": "out/twice.txt", "content": "42"}', "answer: 42"]


def test_exploration_draws_untried_tools_then_the_answer() -> None:
    draw = random.Random(3)
    heads = [explore_head(TOOLS, {"calculator"}, draw) for _ in range(400)]
    assert set(heads) == {"file_read", "file_write"} and 150 < heads.count("file_read") < 250  # uniform
    assert explore_head(TOOLS, set(TOOLS), draw) == "answer"


async def test_an_exploring_run_continues_the_forced_head(tmp_path: Path) -> None:
    """explore=1: every reply starts with the untried tool (here the only one), then answer; the model
    (a stand-in) writes the rest, and the recorded step is the whole line, marked as explored."""
    arith = next(m for m in build_suite("train") if m.family == "arith")
    with StandIn([arith], lambda model: oracle) as server:
        box = prepare_sandbox(arith, tmp_path / "box")
        mission = arith.mission(box, AgentConfig(model="m", prompt_style="compact", explore=1.0))
        opener = MemoryOpener()
        async with OpenAIChatClient(server.base_url, "m") as llm:
            result = await run_mission(mission, llm, opener, mission.toolbox())
    assert check_outcome(arith, result.final_answer, box) and result.steps == 2
    assert [r["messages"][-1] for r in server.requests] == [{"role": "assistant", "content": "calculator:"},
                                                            {"role": "assistant", "content": "answer:"}]
    assert all(r["continue_final_message"] is True and r["add_generation_prompt"] is False for r in server.requests)
    recorder = opener.sessions[0]
    assert [s.step_metadata.get("explored") for s in recorder.steps] == ["calculator", "answer"]
    assert recorder.started["agent_config"]["explore"] == "1.0"
    said = [m for m in conversation(_window_trajectory(recorder))[len(prompt_prefix(mission.toolbox())):]
            if m["role"] == "assistant"]
    assert [m["content"] for m in said] == [f"calculator: {arith.answer}", f"answer: {arith.answer}"]
    assert "raw_reply" not in recorder.steps[0].step_metadata  # head + continuation is the canonical line
