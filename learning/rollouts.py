"""Suite missions run by the ReAct runner against a served model, many at once, each in its own sandbox.

Why concurrently: the model server batches requests that are in flight together, so throughput on
a CPU comes from keeping ``concurrency`` runs open, not from running them one by one. Every run goes
through the tracking SDK like any agent's (so the pipeline judges and stores it) and is labelled with
why it ran (``run_kind``). Success is the suite's exact check, taken here where the sandbox is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from agents.llm import ChatClient, ChatMessage, ChatReply
from agents.missions import AgentConfig
from agents.recording import SessionOpener
from agents.runner import run_mission
from agents.suite import SuiteMission, check_outcome, prepare_sandbox
from schemas.transcript import RUN_KIND_KEY


class Planned(BaseModel):
    """One run to make: a mission, its RULER group (None: alone) and its index within the group."""

    mission: SuiteMission
    group_id: str | None = None
    index: int = 0


class Outcome(BaseModel):
    session_id: str
    mission: str
    family: str
    group_id: str | None
    success: bool
    status: str
    steps: int
    completion_tokens: int
    seconds: float


class _Counting:
    """Delegates to the real client and counts completion tokens (for tokens/s)."""

    def __init__(self, inner: ChatClient) -> None:
        self.inner = inner
        self.completion_tokens = 0

    async def chat(self, messages: list[ChatMessage], *, temperature: float = 0.7, max_tokens: int | None = None,
                   model: str | None = None, logprobs: bool = False, stop: list[str] | None = None,
                   top_p: float = 1.0) -> ChatReply:
        reply = await self.inner.chat(messages, temperature=temperature, max_tokens=max_tokens, model=model,
                                      logprobs=logprobs, stop=stop, top_p=top_p)
        self.completion_tokens += reply.completion_tokens
        return reply


def agent_config(model: str, temperature: float, max_tokens: int, top_p: float = 1.0,
                 explore: float = 0.0) -> AgentConfig:
    """The runner's settings for suite runs: compact prompts, no pattern hints (the policy alone is measured);
    ``explore`` only for training runs."""
    return AgentConfig(model=model, temperature=temperature, top_p=top_p, explore=explore, max_tokens=max_tokens,
                       prompt_style="compact", pattern_limit=0)


async def run_planned(plan: Sequence[Planned], llm: ChatClient, opener: SessionOpener, *, agent: AgentConfig,
                      run_kind: str, work_dir: Path, concurrency: int,
                      on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every planned mission (at most ``concurrency`` at once); outcomes in plan order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, p: Planned) -> Outcome:
        async with gate:
            sandbox = prepare_sandbox(p.mission, work_dir / f"{i:04d}-{p.mission.name}")
            mission = p.mission.mission(sandbox, agent, p.group_id)
            counting = _Counting(llm)
            started = time.monotonic()
            result = await run_mission(mission, counting, opener, mission.toolbox(), group_id=p.group_id,
                                       model=agent.model, labels={RUN_KIND_KEY: run_kind})
            outcome = Outcome(session_id=result.session_id, mission=p.mission.name, family=p.mission.family,
                              group_id=p.group_id, success=check_outcome(p.mission, result.final_answer, sandbox),
                              status=str(result.status), steps=result.steps,
                              completion_tokens=counting.completion_tokens, seconds=time.monotonic() - started)
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(plan))))
