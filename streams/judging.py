"""Finished trajectories -> ``TrajectoryJudged`` per trajectory and RULER ``RewardAssigned`` per group.

Two agents. ``judge`` reads the trajectories topic (keyed by session_id), judges each trajectory
with the configured judge and forwards grouped trajectories, unchanged, to the internal topic
``judging-groups`` keyed by group_id; trajectories without a group are scored as a group of one at
once. ``groups`` reads that topic and collects members in a table keyed by group_id until the group
has ``rollouts_per_group`` members or ``group_window_s`` has passed since its first member (a timer
sweeps), then scores the whole group with RULER.

Why re-key instead of a group_id table fed straight from the trajectories topic: members of one
group arrive on different trajectories partitions, which different workers may own. A Faust
table only sees writes made by the worker that owns the key's partition (changelogs are read at
recovery, not live), so with two workers a group would be split into two partial groups, each
scored on its own. Re-keying puts every member of a group on one partition of the internal topic,
co-partitioned with the table (same count, same default partitioner, ``use_partitioner=True``), so
exactly one worker owns each group. The internal topic is created up front with its partitions
(``Topics.internal()``; auto-created topics get 4 and would break the co-partitioning).

Idempotency (as in the session fold): a member already in a group is not added twice; a scored
group keeps a marker (its member ids) and is never scored again; a member arriving after its group
was scored is scored alone and says so in its reasoning. Outputs carry deterministic event ids and
the sink keeps one row per (session, version), so re-emission after a redelivery is harmless.
A state is marked scored only after its rewards are acknowledged by the broker (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT
from pydantic import BaseModel, ConfigDict

from config.settings import ArtConfig
from judges import build_judge, build_ruler
from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.models import RewardAssigned, TrajectoryCompleted
from streams.crash import guarded
from streams.topics import DeadLetters, raw_topic

log = logging.getLogger(__name__)
JUDGING_NAMESPACE = uuid.UUID("3d0a5c1e-9b7f-4e62-a1d4-7c2e8f5b6a90")


class GroupState(BaseModel):
    """One group's table value: members' raw Avro until scored, then only the scored marker."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    group_id: str
    first_seen: float
    members: dict[str, bytes] = {}
    scored_at: float | None = None
    scored: list[str] = []
    late: list[str] = []


@dataclass
class JudgingStats:
    judged: int = 0
    groups_scored: int = 0
    rewards: int = 0
    late_members: int = 0
    dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class JudgingProcessor:
    """Owns the judge, the ruler, the group table and the emitters of one worker."""

    def __init__(self, app: faust.App, cfg: ArtConfig, codec: Codec, log_epoch: int = 0,
                 concurrency: int | None = None) -> None:
        topics = cfg.kafka.topics()
        self.cfg = cfg
        self.codec = codec
        self.log_epoch = log_epoch
        self.judge = build_judge(cfg)
        self.ruler = build_ruler(cfg)
        self.source = raw_topic(app, topics.trajectories)
        self.regrouped = raw_topic(app, topics.judging_groups, internal=True)
        self.judgments = raw_topic(app, topics.judgments)
        self.rewards = raw_topic(app, topics.rewards)
        self.dead_letters = DeadLetters(app, topics.dead_letters, codec, JUDGING_NAMESPACE, log_epoch)
        self.names = topics
        self.table = app.Table("judging-groups", default=None, partitions=topics.judging_groups.partitions,
                               use_partitioner=True, key_type=bytes, value_type=bytes)
        self.window_s = cfg.judge.group_window_s
        self.retention_s = max(10 * self.window_s, 600.0)
        self.size = cfg.judge.rollouts_per_group
        self.stats = JudgingStats()
        self._limit = asyncio.Semaphore(concurrency or cfg.stream.judge_concurrency)
        self._lock = asyncio.Lock()  # the agent and the sweeper must not score one group twice

    # --- state access ---------------------------------------------------------------------

    def get(self, group_id: str) -> GroupState | None:
        raw = self.table.get(group_id.encode())
        return GroupState.model_validate_json(raw) if raw else None

    def put(self, state: GroupState) -> None:
        self.table[state.group_id.encode()] = state.model_dump_json().encode()

    # --- stage 1: judge every trajectory --------------------------------------------------

    async def _judge_one(self, traj: TrajectoryCompleted) -> Any:
        async with self._limit:
            return await self.judge.ajudge(traj)

    async def judge_batch(self, events: Sequence[EventT]) -> None:
        decoded: list[tuple[TrajectoryCompleted, EventT]] = []
        for ev in events:
            msg = ev.message
            try:
                decoded.append((self.codec.decode(msg.value, expect=TrajectoryCompleted), ev))
            except CodecError as exc:
                await self.dead_letter(msg.topic, msg.partition, msg.offset, msg.value, f"undecodable: {exc}")
        results = await asyncio.gather(*(self._judge_one(t) for t, _ in decoded), return_exceptions=True)
        futures = []
        singles: list[TrajectoryCompleted] = []
        for (traj, ev), judged in zip(decoded, results, strict=True):
            msg = ev.message
            if isinstance(judged, BaseException):
                await self.dead_letter(msg.topic, msg.partition, msg.offset, msg.value,
                                       f"judge {self.judge.name}@{self.judge.version} failed: {judged}")
                continue
            futures.append(await self.judgments.send(key=traj.session_id.encode(),
                                                     value=self.codec.encode(self.names.judgments.name, judged)))
            self.stats.judged += 1
            if traj.group_id is None:
                singles.append(traj)
            else:
                futures.append(await self.regrouped.send(key=traj.group_id.encode(), value=msg.value))
        for traj in singles:
            futures.extend(await self._emit_rewards([traj]))
        for fut in futures:
            await fut

    # --- stage 2: groups ------------------------------------------------------------------

    async def collect(self, events: Sequence[EventT]) -> None:
        by_group: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
        for ev in events:
            msg = ev.message
            try:  # validated in full here: a member that fails later would fail its whole group
                traj = self.codec.decode(msg.value, expect=TrajectoryCompleted)
                if not traj.group_id:
                    raise KeyError("group_id is empty")
                by_group[traj.group_id].append((traj.session_id, msg.value or b""))  # decoded: not a tombstone
            except (CodecError, KeyError) as exc:
                await self.dead_letter(msg.topic, msg.partition, msg.offset, msg.value, f"undecodable: {exc}")
        now = time.time()
        async with self._lock:
            for group_id, members in by_group.items():
                state = self.get(group_id) or GroupState(group_id=group_id, first_seen=now)
                if state.scored_at is not None:
                    await self._late(state, members)
                else:
                    for session_id, raw in members:
                        state.members.setdefault(session_id, raw)
                    if len(state.members) >= self.size:
                        await self._score(state)
                self.put(state)

    async def _late(self, state: GroupState, members: list[tuple[str, bytes]]) -> None:
        """Members that arrive after their group was scored: scored alone, never re-scoring the group."""
        fresh = {sid: raw for sid, raw in members if sid not in state.scored and sid not in state.late}
        for session_id, raw in fresh.items():
            traj = self.codec.decode(raw, expect=TrajectoryCompleted)
            note = f"late member of group {state.group_id} (scored without it); "
            for fut in await self._emit_rewards([traj], note=note):
                await fut
            state.late.append(session_id)
            self.stats.late_members += 1
            log.warning("late member %s of group %s scored alone", session_id, state.group_id)

    async def _score(self, state: GroupState) -> None:
        group = [self.codec.decode(raw, expect=TrajectoryCompleted) for raw in state.members.values()]
        for fut in await self._emit_rewards(group):
            await fut
        state.scored = sorted(state.members)
        state.members = {}
        state.scored_at = time.time()
        self.stats.groups_scored += 1

    async def _emit_rewards(self, group: list[TrajectoryCompleted], note: str = "") -> list[Any]:
        try:
            rewards: list[RewardAssigned] = await self.ruler.ascore_group(group)
        except Exception as exc:  # an LLM that keeps answering garbage must not stop the stream
            for traj in group:
                await self.dead_letter(self.names.judging_groups.name, -1, -1, self.codec.encode(
                    self.names.trajectories.name, traj), f"RULER {self.ruler.reward_version} failed: {exc}",
                    key=f"ruler/{traj.session_id}/{self.ruler.reward_version}")
            return []
        futures = []
        for reward in rewards:
            if note:
                reward = reward.model_copy(update={"reasoning": note + reward.reasoning})
            futures.append(await self.rewards.send(key=reward.session_id.encode(),
                                                   value=self.codec.encode(self.names.rewards.name, reward)))
        self.stats.rewards += len(rewards)
        return futures

    async def sweep(self) -> None:
        """Score groups whose window closed; forget scored groups after the retention."""
        now = time.time()
        async with self._lock:
            for key, raw in list(self.table.items()):
                if not raw:
                    continue
                state = GroupState.model_validate_json(raw)
                if state.scored_at is None and now - state.first_seen >= self.window_s:
                    await self._score(state)
                    self.put(state)
                elif state.scored_at is not None and now - state.scored_at >= self.retention_s:
                    del self.table[key]

    async def dead_letter(self, topic: str, partition: int, offset: int, raw: bytes | None, reason: str,
                          key: str | None = None) -> None:
        await self.dead_letters.send(topic, partition, offset, raw, reason, key)
        self.stats.dead_lettered += 1
        self.stats.by_reason[reason.split(":")[0]] += 1


def attach_judging(app: faust.App, cfg: ArtConfig, codec: Codec, log_epoch: int = 0, batch: int | None = None,
                   within_s: float | None = None) -> JudgingProcessor:
    """Register the judge and group agents, the window sweeper and a ``/judging`` page on ``app`` (batch
    and wait: ``[art.stream]``)."""
    batch = batch or cfg.stream.judge_batch
    within_s = within_s or cfg.stream.judge_wait_s
    processor = JudgingProcessor(app, cfg, codec, log_epoch=log_epoch)

    @app.agent(processor.source, name="judge")
    async def judge(stream: faust.StreamT[bytes]) -> None:
        async def body() -> None:
            async for events in cast(Stream[bytes], stream).take_events(batch, within=within_s):
                await processor.judge_batch(list(events))

        await guarded("the judge agent", body)

    @app.agent(processor.regrouped, name="groups")
    async def groups(stream: faust.StreamT[bytes]) -> None:
        async def body() -> None:
            async for events in cast(Stream[bytes], stream).take_events(batch, within=within_s):
                await processor.collect(list(events))

        await guarded("the groups agent", body)

    @app.timer(interval=cfg.stream.sweep_interval_s)
    async def group_sweeper() -> None:
        await guarded("the group sweeper", processor.sweep)

    @app.page("/judging")
    async def judging_view(web: Any, request: Any) -> Any:
        s = processor.stats
        return web.json({"judge": f"{processor.judge.name}@{processor.judge.version}",
                         "reward_version": processor.ruler.reward_version, "judged": s.judged,
                         "groups_scored": s.groups_scored, "rewards": s.rewards, "late_members": s.late_members,
                         "dead_lettered": s.dead_lettered, "open_groups": len(processor.table)})

    return processor
