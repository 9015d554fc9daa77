"""Session events -> per-session state (a Faust table) -> ``TrajectoryCompleted``.

The agent folds batches (``take_events``) and writes each touched session once per batch: a
changelog record per event would cap throughput (docs/broker.md). The table holds only the small
fold state; step bodies wait in a worker-local cache and are refetched from the ClickHouse mirror
when the cache cannot provide them (after a restart or rebalance). Bad input is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

import faust
from faust.types import EventT

from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.models import ClosedBy, SessionEvent, StepRecorded
from schemas.rules import violation
from schemas.settings import ArtConfig
from streams.assembly import assemble, missing_steps
from streams.mirror import Mirror
from streams.state import SessionState, due_closure, fold_many, force_close
from streams.topics import DeadLetters, raw_topic

log = logging.getLogger(__name__)
DEAD_LETTER_NAMESPACE = uuid.UUID("0b7f3f0e-3c56-4f2a-8d1e-5a8a3c6d9e21")


class SessionProcessor:
    """Owns the fold table, the step cache and the emitters of one worker."""

    def __init__(self, app: faust.App, cfg: ArtConfig, codec: Codec, mirror: Mirror | None,
                 log_epoch: int = 0, repair_after_s: float | None = None) -> None:
        topics = cfg.kafka.topics()
        self.cfg = cfg
        self.codec = codec
        self.mirror = mirror
        self.log_epoch = log_epoch
        self.repair_after_s = cfg.stream.repair_after_s if repair_after_s is None else repair_after_s
        self.source = raw_topic(app, topics.session_events)
        self.trajectories = raw_topic(app, topics.trajectories)
        self.dead_letters = DeadLetters(app, topics.dead_letters, codec, DEAD_LETTER_NAMESPACE, log_epoch)
        self.trajectory_topic = topics.trajectories.name
        self.table = app.Table("sessions", default=None, partitions=topics.session_events.partitions,
                               use_partitioner=True, key_type=bytes, value_type=bytes)
        self.steps: dict[str, dict[int, StepRecorded]] = defaultdict(dict)
        self.emitted = 0
        self.dead_lettered = 0
        self._open: set[bytes] = set()  # keys of sessions not emitted yet, for the sweeper
        self._full_scan_at = 0.0
        self.full_scan_interval_s = cfg.stream.full_scan_interval_s

    # --- state access ---------------------------------------------------------------------

    def get(self, session_id: str) -> SessionState | None:
        raw = self.table.get(session_id.encode())
        return SessionState.model_validate_json(raw) if raw else None

    def put(self, state: SessionState) -> None:
        key = state.session_id.encode()
        self.table[key] = state.model_dump_json().encode()
        if state.emitted is None:
            self._open.add(key)
        else:
            self._open.discard(key)

    # --- the agent body -------------------------------------------------------------------

    async def process(self, events: list[EventT]) -> None:
        now = time.time()
        by_session: dict[str, list[SessionEvent]] = defaultdict(list)
        for ev in events:
            msg = ev.message
            try:
                event = self.codec.decode(msg.value, expect=SessionEvent)
            except CodecError as exc:
                await self.dead_letter(msg.topic, msg.partition, msg.offset, msg.value, str(exc))
                continue
            reason = violation(event)
            if reason:
                await self.dead_letter(msg.topic, msg.partition, msg.offset, msg.value, f"rule violated: {reason}")
                continue
            by_session[event.session_id].append(event)
        ready: list[str] = []
        for session_id, session_events in by_session.items():
            result = fold_many(self.get(session_id), sorted(session_events, key=lambda e: e.seq), now, owned=True)
            self._cache_steps(result.applied)
            self.put(result.state)
            if result.state.ready and result.state.emitted is None:
                ready.append(session_id)
        # concurrently: each close waits for the broker's ack of its trajectory
        await asyncio.gather(*(self.close_safely(sid, ClosedBy.completed) for sid in ready))

    async def close_safely(self, session_id: str, reason: ClosedBy) -> None:
        """A failing close (mirror or broker away) must not stop the agent: the sweeper retries it."""
        try:
            await self.try_close(session_id, reason)
        except Exception:
            log.exception("closing session %s failed; will retry", session_id)

    def _cache_steps(self, applied: list[SessionEvent]) -> None:
        for event in applied:
            if isinstance(event.payload, StepRecorded):
                self.steps[event.session_id][event.seq] = event.payload

    async def dead_letter(self, topic: str, partition: int, offset: int, raw: bytes | None, reason: str) -> None:
        await self.dead_letters.send(topic, partition, offset, raw, reason)
        self.dead_lettered += 1

    # --- closing --------------------------------------------------------------------------

    async def try_close(self, session_id: str, reason: ClosedBy) -> bool:
        """Emit the trajectory if every step body is at hand (cache, else mirror). True when emitted."""
        state = self.get(session_id)
        if state is None or state.emitted is not None:
            return False
        missing_before = state.missing_seqs() if reason is not ClosedBy.completed else []
        if reason is not ClosedBy.completed:
            state = force_close(state, reason)
        steps = self.steps.get(session_id, {})
        lacking = missing_steps(state, steps)
        if lacking and self.mirror is not None:
            fetched = await asyncio.to_thread(self.mirror.events, session_id, lacking)
            self._cache_steps(fetched)
            steps = self.steps.get(session_id, {})
            lacking = missing_steps(state, steps)
        if lacking and reason is ClosedBy.completed:
            return False  # the mirror lags behind the log: the sweeper tries again
        trajectory = assemble(state, steps, reason, missing_before)
        fut = await self.trajectories.send(key=session_id.encode(),
                                           value=self.codec.encode(self.trajectory_topic, trajectory))
        await fut
        current = self.get(session_id) or state
        current.emitted = reason
        self.put(current)
        self.steps.pop(session_id, None)
        self.emitted += 1
        return True

    async def repair(self, state: SessionState) -> None:
        """Refold what the mirror holds for a session stuck on a gap (or with lost state)."""
        if self.mirror is None:
            return
        wanted = list(range(state.next_seq, max(state.pending))) if state.pending else None
        events = await asyncio.to_thread(self.mirror.events, state.session_id, wanted)
        if not events:
            return
        current = self.get(state.session_id) or state
        result = fold_many(current, events, current.last_seen)
        self._cache_steps(result.applied)
        self.put(result.state)
        if result.applied:
            log.info("repaired session %s from the mirror: %d events", state.session_id, len(result.applied))

    async def sweep(self) -> None:
        """Timeouts, gap repairs, and completions that waited for the mirror.

        Only open sessions are visited; a full scan now and then rebuilds that index (the table may
        have been recovered from its changelog) and forgets sessions emitted long ago."""
        now = time.time()
        stream_cfg = self.cfg.stream
        if now >= self._full_scan_at:
            self._full_scan_at = now + self.full_scan_interval_s
            self._open.clear()
            for key, raw in list(self.table.items()):
                if not raw:
                    continue
                state = SessionState.model_validate_json(raw)
                if state.emitted is None:
                    self._open.add(key)
                elif now - state.last_seen > stream_cfg.session_idle_timeout_s:
                    del self.table[key]  # late duplicates after this are refolded from the mirror, then dropped
        closing: list[tuple[str, ClosedBy]] = []
        for key in list(self._open):
            state = self.get(key.decode())
            if state is None or state.emitted is not None:
                self._open.discard(key)
                continue
            if state.pending and state.gap_since is not None and now - state.gap_since >= self.repair_after_s:
                try:
                    await self.repair(state)
                except Exception:
                    log.exception("repairing session %s from the mirror failed; will retry", state.session_id)
                state = self.get(state.session_id) or state
            reason = due_closure(state, now, stream_cfg.session_idle_timeout_s, stream_cfg.gap_timeout_s)
            if reason is not None:
                closing.append((state.session_id, reason))
        await asyncio.gather(*(self.close_safely(sid, reason) for sid, reason in closing))


def attach(app: faust.App, processor: SessionProcessor, batch: int | None = None,
           within_s: float | None = None) -> None:
    """Register the agent, the sweeper timer and the web view on ``app`` (batch and wait: ``[art.stream]``)."""
    batch = batch or processor.cfg.stream.fold_batch
    within_s = within_s or processor.cfg.stream.fold_wait_s

    @app.agent(processor.source, name="sessions")
    async def sessions(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch, within=within_s):
            await processor.process(list(events))

    @app.timer(interval=processor.cfg.stream.sweep_interval_s)
    async def sweeper() -> None:
        await processor.sweep()

    @app.page("/sessions/{session_id}")
    async def session_view(web: Any, request: Any, session_id: str) -> Any:
        state = processor.get(session_id)
        if state is None:
            return web.json({"error": f"session {session_id} is not held by this worker"}, status=404)
        body = state.model_dump(mode="json")
        body["ready"] = state.ready
        body["missing_seqs"] = state.missing_seqs()
        return web.json(body)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"emitted": processor.emitted, "dead_lettered": processor.dead_lettered,
                         "sessions": len(processor.table)})
