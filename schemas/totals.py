"""A session's running totals: one definition for the stream's fold and the tracking SDK.

Both add the same steps and must report the same ``TrajectoryMetadata``; the rule that once diverged
(efficiency = 1/n in the SDK, ok/n in the stream) now lives here only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import StepRecorded, TrajectoryMetadata, UseTool


class RunningTotals(BaseModel):
    """Counts over the steps applied so far. Mutable: ``add`` updates in place (the fold owns a copy)."""

    model_config = ConfigDict(extra="forbid")

    step_count: int = 0
    total_tokens: int = 0
    total_cost: float = 0.0
    tools_used: list[str] = Field(default_factory=list)  # distinct tools, in order of first use
    error_count: int = 0
    execution_time_ms: int = 0

    def add(self, step: StepRecorded) -> None:
        """Count one step."""
        self.step_count += 1
        self.total_tokens += step.tokens
        self.total_cost += step.cost
        self.execution_time_ms += step.execution_time_ms
        self.error_count += step.error is not None
        if isinstance(step.action, UseTool) and step.action.tool not in self.tools_used:
            self.tools_used.append(step.action.tool)

    @property
    def efficiency(self) -> float:
        """Share of steps without an error; 0.0 before the first step."""
        return (self.step_count - self.error_count) / self.step_count if self.step_count else 0.0

    def metadata(self) -> TrajectoryMetadata:
        return TrajectoryMetadata(
            step_count=self.step_count, total_tokens=self.total_tokens, total_cost=round(self.total_cost, 10),
            tools_used=list(self.tools_used), error_count=self.error_count,
            execution_time_ms=self.execution_time_ms, efficiency=self.efficiency)
