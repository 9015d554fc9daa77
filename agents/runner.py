"""The ReAct loop: observe, think, decide one action, act; reflect every few steps.

Every step, including the failed ones, goes through ``StepRecorder.record_step`` with its tokens,
wall time, tool result or error and reflection, so the trajectory in the log is the whole story.
Nothing the model or a tool does ends the run early: a malformed decision or a tool failure is an
error step and the next observation says what went wrong. The run ends at ANSWER (succeeded), at
``max_iterations`` (failed), or when the LLM endpoint fails (error).
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ConfigDict

from agents import compact
from agents.llm import ChatClient, ChatMessage, LLMError
from agents.missions import Mission
from agents.patterns import ScoredPattern
from agents.prompts import (
    DecisionError,
    Turn,
    analyze,
    clip,
    decide_messages,
    parse_decision,
    reflect_messages,
    think_messages,
)
from agents.recording import ActionT, SessionOpener, StepRecorder
from agents.tools import ToolError
from agents.tools.base import Toolbox
from schemas.models import Answer, Ask, CompletionTrace, SessionStatus, Think, UseTool
from schemas.transcript import COMPACT_STYLE, PROMPT_PREFIX_KEY, action_line, malformed_turn

AskHandler = Callable[[str], Awaitable[str]]
"""Answers an agent's ASK (e.g. a human at a prompt); without one the agent is told to go on alone."""

NO_USER = "No user is available to answer questions; continue with your best judgment."


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    mission: str
    group_id: str | None
    status: SessionStatus
    final_answer: str | None
    steps: int
    errors: int
    reflections: int
    total_tokens: int
    tools_used: list[str]
    duration_ms: int
    reason: str | None = None  # why a run did not succeed (the steps' errors say it too, in the store)


def session_config(mission: Mission, tools: Toolbox) -> dict[str, str]:
    """``SessionStarted.agent_config``: the mission's settings, plus the exact prompt prefix when compact
    (the trainer rebuilds the chat from it)."""
    out = mission.agent_config.as_strings()
    if mission.agent_config.prompt_style == COMPACT_STYLE:
        out[PROMPT_PREFIX_KEY] = compact.encode_prefix(compact.prompt_prefix(tools))
    return out


class _Run:
    """State of one session; ``run_mission`` is the public entry point."""

    def __init__(self, mission: Mission, llm: ChatClient, recorder: StepRecorder, tools: Toolbox,
                 patterns: Sequence[ScoredPattern], ask: AskHandler | None) -> None:
        self.mission, self.llm, self.recorder, self.tools, self.ask = mission, llm, recorder, tools, ask
        self.cfg = mission.agent_config
        self.patterns = list(patterns)[: self.cfg.pattern_limit]
        self.tools_text = tools.describe()
        self.turns: list[Turn] = []
        self.tokens = 0
        self.traces: list[CompletionTrace] = []  # the current step's completions, as the policy produced them
        self.compact = self.cfg.prompt_style == COMPACT_STYLE
        self.prefix = compact.prompt_prefix(tools) if self.compact else []
        self.said: list[tuple[str, str]] = []  # compact: (observation, assistant turn) per step
        self.draw = random.Random(recorder.session_id)  # exploration draws, reproducible per session

    def first_observation(self) -> str:
        if self.compact:
            return compact.first_observation(self.mission.objective)
        return f"Task: {self.mission.objective}\nNo steps taken yet."

    async def _chat(self, messages: list[ChatMessage], purpose: str) -> tuple[str, int]:
        stop = {"stop": compact.STOP} if self.compact else {}
        reply = await self.llm.chat(messages, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                    max_tokens=self.cfg.max_tokens,
                                    model=self.cfg.model or None, logprobs=self.cfg.token_traces, **stop)
        if reply.token_ids is not None:
            self.traces.append(CompletionTrace(purpose=purpose, model=reply.model, token_ids=reply.token_ids,
                                               logprobs=reply.logprobs or []))
        return reply.text.strip(), reply.total_tokens

    async def step(self, number: int, observation: str) -> tuple[Turn, str, bool]:
        """One cycle; returns the turn, the next observation, and whether the agent answered."""
        if self.compact:
            return await self.compact_step(number, observation)
        started = time.monotonic()
        tokens = 0
        thought = ""
        meta: dict[str, str] = {}
        self.traces = []
        try:
            thought, used = await self._chat(think_messages(self.mission, self.tools_text, self.turns, observation,
                                                            self.patterns), "think")
            tokens += used
            raw, used = await self._chat(decide_messages(self.mission, self.tools_text, observation, thought,
                                                         self.patterns), "decide")
            tokens += used
        except LLMError as exc:
            await self._record(Turn(number, observation, thought, Think(note=""), error=f"LLM call failed: {exc}"),
                               "", meta, started, tokens)
            raise
        tool_result: str | None = None
        error: str | None = None
        action: ActionT
        try:
            decision = parse_decision(raw)
        except DecisionError as exc:
            action, action_input = Think(note="malformed decision"), clip(raw, 2000)
            error = f"malformed decision: {exc}"
            following = (f"Your last decision could not be used ({exc}). Reply with exactly one JSON object "
                         "with an \"action\" of use_tool, answer, ask or think.")
        else:
            action, action_input = decision.to_action(), decision.input
            if decision.thought:
                meta["decision_thought"] = clip(decision.thought, 1000)
            tool_result, error, following = await self._act(action)
        turn = Turn(number, observation, thought, action, tool_result, error)
        answered = isinstance(action, Answer)
        if not answered and number % self.cfg.reflection_interval == 0:
            analysis = analyze([*self.turns, turn], self.cfg.max_iterations)
            try:
                reflection, used = await self._chat(reflect_messages(self.mission, self.tools_text,
                                                                     [*self.turns, turn], analysis), "reflect")
                tokens += used
                turn = Turn(number, observation, thought, action, tool_result, error, reflection or None)
            except LLMError as exc:
                meta["reflection_error"] = clip(str(exc), 500)
        await self._record(turn, action_input, meta, started, tokens)
        return turn, following, answered

    async def compact_step(self, number: int, observation: str) -> tuple[Turn, str, bool]:
        """One call: the chat so far -> one action line -> act; no separate think or reflect call."""
        started = time.monotonic()
        meta: dict[str, str] = {}
        self.traces = []
        messages = compact.chat(self.prefix, self.said, observation)
        head = self._explored_head()
        if head is not None:
            meta["explored"] = head
            messages.append(compact.head_prefix(head))
        try:
            raw, tokens = await self._chat(messages, "act")
            if head is not None:
                raw = f"{messages[-1].content} {raw}"
        except LLMError as exc:
            await self._record(Turn(number, observation, "", Think(note=""), error=f"LLM call failed: {exc}"),
                               "", meta, started, 0)
            raise
        tool_result: str | None = None
        error: str | None = None
        action: ActionT
        try:
            decision = compact.parse_reply(raw, self.tools.names())
        except DecisionError as exc:
            action, action_input, thought = Think(note="malformed decision"), clip(raw, 2000), ""
            error = f"malformed decision: {exc}"
            following = compact.malformed_observation(str(exc), self.mission.objective)
            self.said.append((observation, malformed_turn(raw)))
        else:
            action, action_input, thought = decision.to_action(), decision.input, decision.thought
            self.said.append((observation, action_line(decision.action, decision.tool, decision.input)))
            tool_result, error, following = await self._act(action)
            if isinstance(action, UseTool):
                following = (compact.error_observation(error, self.mission.objective) if error is not None
                             else compact.tool_observation(tool_result or "", self.mission.objective))
        if raw.strip() != self.said[-1][1]:
            meta["raw_reply"] = clip(raw, 2000)
        turn = Turn(number, observation, thought, action, tool_result, error)
        await self._record(turn, action_input, meta, started, tokens)
        return turn, following, isinstance(action, Answer)

    def _explored_head(self) -> str | None:
        """The head this step's reply must start with (exploration), or None: the model decides."""
        if self.cfg.explore <= 0 or self.draw.random() >= self.cfg.explore:
            return None
        called = {t.action.tool for t in self.turns if isinstance(t.action, UseTool) and t.error is None}
        return compact.explore_head(self.tools.names(), called, self.draw)

    async def _act(self, action: ActionT) -> tuple[str | None, str | None, str]:
        """(tool_result, error, next observation) for a well-formed action."""
        if isinstance(action, UseTool):
            try:
                result = await self.tools.call(action.tool, action.input)
            except ToolError as exc:
                return None, str(exc), f"The tool {action.tool} failed: {exc}"
            return result, None, f"Result of {action.tool}:\n{result}"
        if isinstance(action, Ask):
            if self.ask is None:
                return None, None, NO_USER
            reply = await self.ask(action.question)
            return reply, None, f"The user answered: {reply}"
        if isinstance(action, Think):
            return None, None, f"You noted: {action.note}\nContinue toward the objective."
        return None, None, ""

    async def _record(self, turn: Turn, action_input: str, meta: dict[str, str], started: float,
                      tokens: int) -> None:
        self.turns.append(turn)
        self.tokens += tokens
        await self.recorder.record_step(
            observation=turn.observation, thought=turn.thought, action=turn.action, action_input=action_input,
            tool_result=turn.tool_result, error=turn.error, reflection=turn.reflection, step_metadata=meta,
            execution_time_ms=int((time.monotonic() - started) * 1000), tokens=tokens,
            cost=tokens * self.cfg.cost_per_1k_tokens / 1000, completions=list(self.traces))


async def run_mission(mission: Mission, llm: ChatClient, opener: SessionOpener, tools: Toolbox,
                      patterns: Sequence[ScoredPattern] | None = None, *, group_id: str | None = None,
                      model: str = "", ask: AskHandler | None = None,
                      labels: dict[str, str] | None = None) -> RunResult:
    """Run one session of ``mission`` and record every step; never raises for model or tool mistakes.

    ``labels`` are added to the session's ``agent_config`` (e.g. ``run_kind``: why the run happened).
    """
    started = time.monotonic()
    group = group_id or mission.group_id
    recorder = await opener.start_session(
        agent_name=mission.name, objective=mission.objective, group_id=group,
        model=mission.agent_config.model or model or str(getattr(llm, "model", "")),
        agent_config={**session_config(mission, tools), **(labels or {})},
        success_criteria=list(mission.success_criteria))
    run = _Run(mission, llm, recorder, tools, patterns or [], ask)
    status, answer = SessionStatus.failed, None
    observation = run.first_observation()
    try:
        for number in range(1, mission.agent_config.max_iterations + 1):
            turn, observation, answered = await run.step(number, observation)
            if answered:
                assert isinstance(turn.action, Answer)
                status, answer = SessionStatus.succeeded, turn.action.text
                break
    except LLMError:
        status = SessionStatus.error
    except BaseException as exc:  # a recorder or program failure: close the session, then let it surface
        with contextlib.suppress(Exception):
            await recorder.complete(None, SessionStatus.error if isinstance(exc, Exception) else
                                    SessionStatus.cancelled)
        raise
    await recorder.complete(answer, status)
    tools_used = sorted({t.action.tool for t in run.turns if isinstance(t.action, UseTool)})
    last_error = next((t.error for t in reversed(run.turns) if t.error), None)
    reason = None
    if status is SessionStatus.error:
        reason = last_error or "the LLM endpoint failed"
    elif status is SessionStatus.failed:
        reason = f"no answer within max_iterations ({mission.agent_config.max_iterations} steps)" + (
            f"; last error: {last_error}" if last_error else "")
    return RunResult(session_id=recorder.session_id, mission=mission.name, group_id=group, status=status,
                     final_answer=answer, steps=len(run.turns), errors=sum(1 for t in run.turns if t.error),
                     reflections=sum(1 for t in run.turns if t.reflection), total_tokens=run.tokens,
                     tools_used=tools_used, duration_ms=int((time.monotonic() - started) * 1000), reason=reason)


async def run_rollouts(mission: Mission, llm: ChatClient, opener: SessionOpener, tools: Toolbox,
                       patterns: Sequence[ScoredPattern] | None = None, *, rollouts: int | None = None,
                       group_id: str | None = None, model: str = "",
                       ask: AskHandler | None = None) -> list[RunResult]:
    """``rollouts`` sessions of one mission in one group, one after another (they share the tools)."""
    n = rollouts or mission.rollouts
    group = group_id or mission.group_id or (f"{mission.name}-{uuid.uuid4().hex[:8]}" if n > 1 else None)
    return [await run_mission(mission, llm, opener, tools, patterns, group_id=group, model=model, ask=ask)
            for _ in range(n)]
