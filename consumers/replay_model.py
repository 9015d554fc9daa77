"""What a replay is asked to do and what it reports (shared by the Python and the SQL engine)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.settings import ArtConfig


class ReplayError(Exception):
    """The replay could not start (bad arguments, no broker, no mirror)."""


class ReplayRequest(BaseModel):
    """What to re-score and under which versions (the CLI's arguments, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    since: datetime | None = Field(None, description="completed_at lower bound; None = from the beginning")
    judge: str = Field(description="name@version of the judge to run")
    reward_version: str | None = Field(None, description="RULER version; None = judgments only")
    source: Literal["topic", "clickhouse"] = "topic"
    idle_s: float = Field(3.0, gt=0, description="stop reading a topic after this long without records")
    engine: Literal["auto", "python", "sql"] = Field(
        "auto", description="sql: judge in ClickHouse (heuristic judge only); auto: sql when it applies")

    @field_validator("judge")
    @classmethod
    def _name_at_version(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise ValueError("--judge must be name@version, e.g. heuristic@2")
        return value

    @property
    def judge_name(self) -> str:
        return self.judge.split("@", 1)[0]

    @property
    def judge_version(self) -> str:
        return self.judge.split("@", 1)[1]


def parse_since(text: str) -> datetime | None:
    """``beginning`` -> None; an ISO date or time (naive = UTC) -> aware datetime."""
    if text.strip().lower() in ("beginning", "earliest", ""):
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"--from must be an ISO date/time or 'beginning', not {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class ReplayResult:
    read: int = 0
    rescored: int = 0
    skipped_before_since: int = 0
    duplicates: int = 0
    undecodable: int = 0
    judge_failures: int = 0
    judgments: int = 0
    rewards: int = 0
    groups: int = 0
    seconds: float = 0.0
    note: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (sql engine)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replay_config(cfg: ArtConfig, request: ReplayRequest) -> ArtConfig:
    """The configuration the replay judges under: the requested judge and reward versions."""
    judge = cfg.judge.model_copy(update={"name": request.judge_name, "version": request.judge_version,
                                         "reward_version": request.reward_version or cfg.judge.reward_version})
    return cfg.model_copy(update={"judge": judge})
