"""Scripted agents for the demo and benchmarks: verifiable arithmetic tasks, policies of varying
quality, real tools and the real tracking SDK — no LLM needed, yet rewards differ within a group.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from agents.missions import ToolSpec
from agents.recording import SessionOpener, StepRecorder
from agents.tools import Toolbox, ToolError, build_toolbox
from schemas.models import Answer, SessionStatus, Think, UseTool

POLICIES = ("expert", "careful", "wanderer", "sloppy")


@dataclass(frozen=True)
class Task:
    task_id: str
    a: int
    b: int
    c: int

    @property
    def expression(self) -> str:
        return f"{self.a} * {self.b} + {self.c}"

    @property
    def answer(self) -> int:
        return self.a * self.b + self.c

    @property
    def objective(self) -> str:
        return f"Compute {self.expression} and answer with the number."


def make_tasks(count: int, seed: int = 0) -> list[Task]:
    rng = random.Random(seed)
    return [Task(f"task-{seed}-{i}", rng.randint(11, 99), rng.randint(11, 99), rng.randint(1, 999))
            for i in range(count)]


def calculator_toolbox() -> Toolbox:
    return build_toolbox([ToolSpec(name="calculator")], base_dir=Path("."))


async def _use(session: StepRecorder, tools: Toolbox, observation: str, thought: str, expr: str) -> str | None:
    start = time.perf_counter()
    try:
        result, error = await tools.call("calculator", expr), None
    except ToolError as exc:
        result, error = None, str(exc)
    await session.record_step(observation=observation, thought=thought, action=UseTool(tool="calculator", input=expr),
                              action_input=expr, tool_result=result, error=error,
                              execution_time_ms=int((time.perf_counter() - start) * 1000), tokens=40 + len(thought),
                              cost=0.00002 * (40 + len(thought)))
    return result


async def _answer(session: StepRecorder, observation: str, text: str) -> None:
    await session.record_step(observation=observation, thought=f"The answer is {text}.", action=Answer(text=text),
                              action_input=text, tokens=20, cost=0.0004)


async def run_scripted(opener: SessionOpener, tools: Toolbox, task: Task, policy: str, group_id: str,
                       rng: random.Random) -> tuple[str, SessionStatus]:
    """One rollout of ``task`` with ``policy``; returns (session id, status)."""
    session = await opener.start_session(agent_name=f"{policy}-agent", objective=task.objective, group_id=group_id,
                                         model="scripted", agent_config={"policy": policy, "max_iterations": "8"},
                                         success_criteria=[str(task.answer)])
    final: str | None
    if policy == "expert":
        final = await _use(session, tools, task.objective, f"Use the calculator on {task.expression}.", task.expression)
    elif policy == "careful":
        product = await _use(session, tools, task.objective, "First the product, using the calculator.",
                             f"{task.a} * {task.b}")
        final = await _use(session, tools, f"product = {product}", "Now add the constant with the calculator.",
                           f"{product} + {task.c}")
    elif policy == "wanderer":
        await session.record_step(observation=task.objective, thought="Let me think about the problem first.",
                                  action=Think(note="restating the task"), tokens=30, cost=0.0006)
        await _use(session, tools, task.objective, "Try the calculator.", task.expression)
        final = await _use(session, tools, "got a number", "Check it once more with the calculator.", task.expression)
    else:  # sloppy: a malformed call, then a guess that is right only sometimes
        await _use(session, tools, task.objective, "Quick calculation.", f"{task.a} ** * {task.b}")
        final = str(task.answer if rng.random() < 0.4 else task.answer + rng.randint(1, 9))
    text = final if final is not None else "unknown"
    await _answer(session, f"result = {text}", text)
    status = SessionStatus.succeeded if text == str(task.answer) else SessionStatus.failed
    await session.complete(text, status)
    return session.session_id, status
