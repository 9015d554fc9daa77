"""The trajectory list's filters: parsed from the URL (untrusted), turned into SQL conditions whose
text is fixed and whose values are ClickHouse parameters, and back into URLs (shareable views)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.models import SessionStatus

PAGE_SIZES = (25, 50, 100, 200)
Direction = Literal["before", "after"]


class FilterError(ValueError):
    """A filter value the list cannot use; the message names the parameter."""


class Cursor(BaseModel):
    """A keyset position: (completed_at, session_id) of the row a page starts after."""

    completed_at: datetime
    session_id: str

    @classmethod
    def parse(cls, text: str) -> Cursor:
        stamp, sep, session_id = text.partition("|")
        if not sep or not session_id:
            raise FilterError("a page cursor is <completed_at>|<session_id>")
        return cls(completed_at=_utc(datetime.fromisoformat(stamp.replace("Z", "+00:00"))), session_id=session_id)

    def text(self) -> str:
        return f"{self.completed_at.isoformat()}|{self.session_id}"


class TrajectoryFilter(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    agent: str | None = Field(None, max_length=500)
    group: str | None = Field(None, max_length=1000)
    status: SessionStatus | None = None
    model: str | None = Field(None, max_length=500)
    judge: str | None = Field(None, max_length=200, description="name@version: only trajectories it judged")
    reward_version: str | None = Field(None, max_length=200, description="only trajectories rewarded under it")
    reward_min: float | None = None
    reward_max: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    before: str | None = Field(None, max_length=2000)
    after: str | None = Field(None, max_length=2000)

    @field_validator("agent", "group", "model", "judge", "reward_version", "before", "after", "status", "since",
                     "until", "reward_min", "reward_max", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("reward_min", "reward_max")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value) if value is not None else None

    @field_validator("judge")
    @classmethod
    def _judge(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError("is name@version, e.g. heuristic@1")
        return value

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if value not in PAGE_SIZES:
            raise ValueError(f"is one of {', '.join(map(str, PAGE_SIZES))}")
        return value

    @classmethod
    def from_query(cls, query: Any) -> TrajectoryFilter:
        """From a request's query string (a MultiDict or a dict); a bad value is one clear error."""
        try:
            return cls.model_validate({k: query.get(k) for k in cls.model_fields if query.get(k) is not None})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise FilterError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def cursor(self) -> tuple[Direction, Cursor] | None:
        if self.before:
            return "before", Cursor.parse(self.before)
        if self.after:
            return "after", Cursor.parse(self.after)
        return None

    def conditions(self, default_reward_version: str) -> tuple[list[str], dict[str, Any]]:
        """WHERE conditions over ``trajectories`` (fixed texts) and their parameters, cursor excluded.
        A reward range without a version applies to ``default_reward_version``."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if self.agent is not None:
            where.append("agent_name = {agent:String}")
            params["agent"] = self.agent
        if self.group is not None:
            where.append("group_id = {group:String}")
            params["group"] = self.group
        if self.status is not None:
            where.append("status = {status:String}")
            params["status"] = self.status.value
        if self.model is not None:
            where.append("model = {model:String}")
            params["model"] = self.model
        if self.since is not None:
            where.append("completed_at >= {since:DateTime64(6, 'UTC')}")
            params["since"] = self.since
        if self.until is not None:
            where.append("completed_at < {until:DateTime64(6, 'UTC')}")
            params["until"] = self.until
        if self.judge is not None:
            name, _, version = self.judge.partition("@")
            where.append("session_id IN (SELECT session_id FROM judgments "
                         "WHERE judge_name = {judge_name:String} AND judge_version = {judge_version:String})")
            params |= {"judge_name": name, "judge_version": version}
        if self.reward_version is not None or self.reward_min is not None or self.reward_max is not None:
            rewards = "SELECT session_id FROM rewards WHERE reward_version = {rv:String}"
            params["rv"] = self.reward_version or default_reward_version
            if self.reward_min is not None:
                rewards += " AND total >= {reward_min:Float64}"
                params["reward_min"] = self.reward_min
            if self.reward_max is not None:
                rewards += " AND total <= {reward_max:Float64}"
                params["reward_max"] = self.reward_max
            where.append(f"session_id IN ({rewards})")
        return where, params

    def query_string(self, **changes: Any) -> str:
        """This view's URL query with ``changes`` (None drops a key); paging keys reset unless given."""
        values: dict[str, Any] = self.model_dump(exclude_none=True, exclude={"before", "after"})
        if values.get("limit") == 50:
            values.pop("limit")
        values |= changes
        out = {k: _url_value(v) for k, v in values.items() if v is not None and v != ""}
        return urlencode(out)

    def active(self) -> dict[str, str]:
        """The filters in use, for the chips above the table (paging and page size excluded)."""
        dumped = self.model_dump(exclude_none=True, exclude={"before", "after", "limit"})
        return {k: _url_value(v) for k, v in dumped.items()}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _url_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + ("" if value.microsecond == 0 else f".{value.microsecond:06d}")
    if isinstance(value, SessionStatus):
        return value.value
    if isinstance(value, float):
        return repr(value)
    return str(value)
