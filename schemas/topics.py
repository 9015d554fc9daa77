"""Every topic name and partition count, in one place.

Names carry a configurable prefix so tests (or tenants) can share one broker without seeing each
other's data. Session events are keyed by session_id; the partition count bounds worker parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    record: str  # the Avro record name its values carry


@dataclass(frozen=True)
class Topics:
    prefix: str = "art."
    session_partitions: int = 6

    @property
    def session_events(self) -> TopicSpec:
        return TopicSpec(f"{self.prefix}session-events", self.session_partitions, "art.SessionEvent")

    @property
    def trajectories(self) -> TopicSpec:
        return TopicSpec(f"{self.prefix}trajectories", 3, "art.TrajectoryCompleted")

    @property
    def judgments(self) -> TopicSpec:
        return TopicSpec(f"{self.prefix}judgments", 3, "art.TrajectoryJudged")

    @property
    def rewards(self) -> TopicSpec:
        return TopicSpec(f"{self.prefix}rewards", 3, "art.RewardAssigned")

    @property
    def dead_letters(self) -> TopicSpec:
        return TopicSpec(f"{self.prefix}dead-letters", 1, "art.DeadLetter")

    @property
    def judging_groups(self) -> TopicSpec:
        """Internal: finished trajectories re-keyed by group_id, so one worker holds a whole group."""
        return TopicSpec(f"{self.prefix}judging-groups", 3, "art.TrajectoryCompleted")

    def all(self) -> list[TopicSpec]:
        return [self.session_events, self.trajectories, self.judgments, self.rewards, self.dead_letters]

    def internal(self) -> list[TopicSpec]:
        """Topics only the stream reads (not sunk to ClickHouse); created up front like the rest."""
        return [self.judging_groups]

