"""Session events -> per-session state (a Faust table) -> ``TrajectoryCompleted``.

The agent folds batches (``take_events``) and writes each touched session once per batch: a
changelog record per event would cap throughput (docs/broker.md). The table holds only the small
fold state; step bodies wait in a worker-local cache and are refetched from the ClickHouse mirror
when the cache cannot provide them (after a restart or rebalance).

Every record is applied or dead-lettered, with the reason and its log coordinates, in its batch:
what ``schemas.rules.admit`` refuses (size, decoding, bounds, rules — the sink refuses the same),
and what the fold refuses (conflicting duplicates, events after completion or for a closed session,
sessions too large). A session that never started (no seq 0 within the gap timeout) is not turned
into a trajectory: its events are dead-lettered as an unknown session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT

from config.settings import ArtConfig
from schemas.codec import Codec
from schemas.models import DEAD_LETTER_NAMESPACE, ClosedBy, StepRecorded
from schemas.rules import Refused, admit
from streams.assembly import assemble, missing_steps
from streams.crash import guarded
from streams.mirror import Mirror
from streams.state import Held, Origin, SessionState, due_closure, fold_many, force_close, record_digest
from streams.topics import DeadLetters, raw_topic

log = logging.getLogger(__name__)
UNKNOWN_SESSION = "unknown session: no session_started (seq 0) arrived before the gap timeout"


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
        self.source_topic = topics.session_events.name
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
        by_session: dict[str, list[Held]] = defaultdict(list)
        for ev in events:
            msg = ev.message
            origin = Origin(log_epoch=self.log_epoch, topic=msg.topic, partition=msg.partition, offset=msg.offset)
            try:
                event = admit(self.codec, msg.key or b"", msg.value)
            except Refused as exc:
                await self.dead_letter(origin, msg.value, str(exc))
                continue
            except Exception as exc:  # a bug met by one record must not stop the records behind it
                log.exception("admitting %s/%d@%d failed", msg.topic, msg.partition, msg.offset)
                await self.dead_letter(origin, msg.value, f"internal error: {exc.__class__.__name__}: {exc}")
                continue
            value = msg.value or b""  # admitted, so never a tombstone
            by_session[event.session_id].append(Held.of(event, record_digest(value), len(value), origin))
        ready: list[str] = []
        for session_id, arrivals in by_session.items():
            try:
                result = fold_many(self.get(session_id), arrivals, now, owned=True)
            except Exception as exc:
                log.exception("folding session %s failed", session_id)
                for held in arrivals:
                    await self.dead_letter(held.origin, None, f"internal error: {exc.__class__.__name__}: {exc}",
                                           held)
                continue
            self._cache_steps(result.applied)
            self.put(result.state)
            await self.dead_letter_all(result.rejected)
            if result.state.ready and result.state.emitted is None:
                ready.append(session_id)
        # concurrently: each close waits for the broker's ack of its trajectory
        await asyncio.gather(*(self.close_safely(sid, ClosedBy.completed) for sid in ready))

    async def close_safely(self, session_id: str, reason: ClosedBy, mirrored: list[Held] | None = None) -> None:
        """A failing close (mirror or broker away) must not stop the agent: the sweeper retries it."""
        try:
            await self.try_close(session_id, reason, mirrored)
        except Exception:
            log.exception("closing session %s failed; will retry", session_id)

    def _cache_steps(self, applied: list[Any]) -> None:
        for event in applied:
            if isinstance(event.payload, StepRecorded):
                self.steps[event.session_id][event.seq] = event.payload

    async def dead_letter_all(self, rejected: list[tuple[Held, str]]) -> None:
        for held, reason in rejected:
            await self.dead_letter(held.origin, None, reason, held)

    async def dead_letter(self, origin: Origin, raw: bytes | None, reason: str, held: Held | None = None) -> None:
        """One dead letter per record (its id is its log coordinates, ``schemas.models.dead_letter_id``),
        raw bytes included."""
        if raw is None and held is not None:  # canonical records re-encode to their own bytes
            raw = self.codec.encode(origin.topic or self.source_topic, held.event)
        await self.dead_letters.send(origin.topic, origin.partition, origin.offset, raw, reason,
                                     log_epoch=origin.log_epoch)
        self.dead_lettered += 1

    # --- closing --------------------------------------------------------------------------

    async def try_close(self, session_id: str, reason: ClosedBy, mirrored: list[Held] | None = None) -> bool:
        """Emit the trajectory if every step body is at hand (cache, else mirror). True when emitted.

        Before giving up on a gap or an idle session, what the mirror holds (``mirrored``, or looked
        up here) is folded in: it may complete the session. A session that never started is closed
        without a trajectory and its events are dead-lettered."""
        state = self.get(session_id)
        if state is None or state.emitted is not None:
            return False
        if reason is not ClosedBy.completed and self.mirror is not None:
            if mirrored is None:
                mirrored = (await self._mirrored([session_id]))[session_id]
            await self.repair(state, mirrored)
            state = self.get(session_id) or state
            if state.ready:
                reason = ClosedBy.completed
        if reason is not ClosedBy.completed and state.started is None:
            await self.dead_letter_all([(held, UNKNOWN_SESSION) for _, held in sorted(state.pending.items())])
            state.pending, state.gap_since, state.emitted = {}, None, reason
            self.put(state)
            self.steps.pop(session_id, None)
            return False
        missing_before = state.missing_seqs() if reason is not ClosedBy.completed else []
        if reason is not ClosedBy.completed:
            state = force_close(state, reason)
        steps = self.steps.get(session_id, {})
        lacking = missing_steps(state, steps)
        if lacking and self.mirror is not None:
            fetched = await asyncio.to_thread(self.mirror.events, session_id, lacking)
            self._cache_steps([h.event for h in fetched])
            steps = self.steps.get(session_id, {})
            lacking = missing_steps(state, steps)
        if lacking and reason is ClosedBy.completed:
            return False  # the mirror lags behind the log: the sweeper tries again
        trajectory = assemble(state, steps, reason, missing_before)
        fut = await self.trajectories.send(key=session_id.encode(),
                                           value=self.codec.encode(self.trajectory_topic, trajectory))
        await fut
        current = self.get(session_id) or state
        if reason is not ClosedBy.completed:
            current = force_close(current, reason)
        current.emitted = reason
        self.put(current)
        self.steps.pop(session_id, None)
        self.emitted += 1
        return True

    async def _mirrored(self, session_ids: list[str]) -> dict[str, list[Held]]:
        """What the mirror holds of these sessions (one query for all of them)."""
        if not session_ids or self.mirror is None:
            return {sid: [] for sid in session_ids}
        return await asyncio.to_thread(self.mirror.sessions, session_ids)

    async def repair(self, state: SessionState, mirrored: list[Held]) -> None:
        """Refold what the mirror holds for a session stuck on a gap (or with lost state): the mirror
        keeps the first record of each seq the log carried, so it wins over a different pending one."""
        current = self.get(state.session_id) or state
        events = [h for h in mirrored if h.event.seq >= current.next_seq]
        if not events:
            return
        result = fold_many(current, events, current.last_seen, authoritative=True)
        self._cache_steps(result.applied)
        self.put(result.state)
        await self.dead_letter_all(result.rejected)
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
                scanned = SessionState.model_validate_json(raw)
                if scanned.emitted is None:
                    self._open.add(key)
                elif now - scanned.last_seen > stream_cfg.session_idle_timeout_s:
                    del self.table[key]  # late duplicates after this are refolded from the mirror, then dropped
        states: list[SessionState] = []
        for key in list(self._open):
            state = self.get(key.decode())
            if state is None or state.emitted is not None:
                self._open.discard(key)
            else:
                states.append(state)
        timeout_s, gap_s = stream_cfg.session_idle_timeout_s, stream_cfg.gap_timeout_s
        gapped = [st for st in states if st.pending and st.gap_since is not None
                  and now - st.gap_since >= self.repair_after_s]
        giving_up = [st for st in states if due_closure(st, now, timeout_s, gap_s) not in (None, ClosedBy.completed)]
        try:  # one lookup for every session that needs the mirror in this pass
            mirrored = await self._mirrored(sorted({st.session_id for st in gapped + giving_up}))
        except Exception:
            log.exception("looking up %d sessions in the mirror failed; will retry", len(gapped + giving_up))
            return
        for state in gapped:
            await self.repair(state, mirrored[state.session_id])
        closing: list[tuple[str, ClosedBy]] = []
        for state in states:
            state = self.get(state.session_id) or state
            reason = due_closure(state, now, timeout_s, gap_s)
            if reason is not None:
                closing.append((state.session_id, reason))
        await asyncio.gather(*(self.close_safely(sid, reason, mirrored.get(sid)) for sid, reason in closing))


def attach(app: faust.App, processor: SessionProcessor, batch: int | None = None,
           within_s: float | None = None) -> None:
    """Register the agent, the sweeper timer and the web view on ``app`` (batch and wait: ``[art.stream]``)."""
    batch = batch or processor.cfg.stream.fold_batch
    within_s = within_s or processor.cfg.stream.fold_wait_s

    @app.agent(processor.source, name="sessions")
    async def sessions(stream: faust.StreamT[bytes]) -> None:
        async def body() -> None:
            async for events in cast(Stream[bytes], stream).take_events(batch, within=within_s):
                await processor.process(list(events))

        await guarded("the sessions agent", body)

    @app.timer(interval=processor.cfg.stream.sweep_interval_s)
    async def sweeper() -> None:
        await guarded("the session sweeper", processor.sweep)

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
