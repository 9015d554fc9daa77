"""The port between the runner and the tracking SDK.

The runner only needs to open a session and record steps into it; ``agents.tracking.Tracker`` (the
SDK that turns these calls into Avro events on Kafka) satisfies ``SessionOpener``, and tests use an
in-memory double. Keeping the port here means the runner never imports Kafka code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from schemas.models import Answer, Ask, CompletionTrace, SessionStatus, Think, UseTool

ActionT = UseTool | Answer | Ask | Think


class AgentError(Exception):
    """Root of the errors the runner side raises (missions, tools, LLM client)."""


@runtime_checkable
class StepRecorder(Protocol):
    """One open session: each call becomes one ``StepRecorded`` event with the next seq."""

    session_id: str

    async def record_step(self, *, observation: str, thought: str, action: ActionT,
                          action_input: str = "", tool_result: str | None = None, error: str | None = None,
                          reflection: str | None = None, step_reward: float | None = None,
                          step_metadata: dict[str, str] | None = None, execution_time_ms: int = 0,
                          tokens: int = 0, cost: float = 0.0, completions: list[CompletionTrace] | None = None) -> int:
        """Record one step; returns its seq."""
        ...

    async def complete(self, final_answer: str | None, status: SessionStatus) -> None:
        """Close the session (``SessionCompleted``)."""
        ...


@runtime_checkable
class SessionOpener(Protocol):
    """Something that starts tracked sessions (the real ``Tracker``, or a test double)."""

    async def start_session(self, *, agent_name: str, objective: str, group_id: str | None = None, model: str = "",
                            agent_config: dict[str, str] | None = None,
                            success_criteria: list[str] | None = None) -> StepRecorder:
        """Emit ``SessionStarted`` and return the recorder for its steps."""
        ...
