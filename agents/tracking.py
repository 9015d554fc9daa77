"""The tracking SDK: how an agent process streams its run into Kafka.

A ``Tracker`` owns one aiokafka producer and a bounded queue (``record_step`` waits when the queue
is full: backpressure with bounded memory). Each ``TrackedSession`` numbers its events (``seq``
from 0) and ids them, so downstream folds can drop duplicates and wait for gaps. When the broker
cannot be reached, events go to an append-only spool file and are re-sent in order later; when the
embedded broker restarts (it forgets acknowledged data), the recent window is re-sent as well —
duplicates are harmless downstream, losses are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from agents.spool import Spool, orphaned_spools
from schemas.codec import Codec
from schemas.models import (
    Action,
    CompletionTrace,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    SessionStatus,
    StepRecorded,
    TrajectoryMetadata,
)
from schemas.registry import registry_for
from schemas.runtime import read_stack_info, stack_file
from schemas.settings import ArtConfig
from schemas.topics import Topics, TopicSpec
from schemas.totals import RunningTotals

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracker was used wrongly (closed, or a session used after completion)."""


class TrackedSession:
    """One agent run. Not thread-safe; one coroutine records its steps in order."""

    def __init__(self, tracker: Tracker, session_id: str, agent_name: str, started: SessionStarted) -> None:
        self.tracker = tracker
        self.session_id = session_id
        self.agent_name = agent_name
        self.started = started
        self.seq = 0
        self.closed = False
        self.totals = RunningTotals()

    async def _emit(self, payload: SessionStarted | StepRecorded | SessionCompleted) -> int:
        if self.closed:
            raise TrackingError(f"session {self.session_id} is already completed")
        seq = self.seq
        event = SessionEvent(session_id=self.session_id, seq=seq, agent_name=self.agent_name, payload=payload)
        self.seq += 1
        await self.tracker.emit(event)
        return seq

    async def record_step(self, *, observation: str, thought: str, action: Action, action_input: str = "",
                          tool_result: str | None = None, error: str | None = None, reflection: str | None = None,
                          step_reward: float | None = None, step_metadata: dict[str, str] | None = None,
                          execution_time_ms: int = 0, tokens: int = 0, cost: float = 0.0,
                          completions: list[CompletionTrace] | None = None) -> int:
        """Record one step; returns its seq. ``completions``: the token ids and logprobs of the LLM calls
        behind the step, when the endpoint returned them (``agents.llm``, ``art serve``)."""
        step = StepRecorded(step_number=self.totals.step_count, observation=observation, thought=thought,
                            action=action,
                            action_input=action_input, tool_result=tool_result, error=error, reflection=reflection,
                            step_reward=step_reward, step_metadata=step_metadata or {},
                            execution_time_ms=execution_time_ms, tokens=tokens, cost=cost,
                            completions=completions or [])
        return await self.record(step)

    async def record(self, step: StepRecorded) -> int:
        """Record a step built elsewhere (capture keeps upstream timestamps and token data); the
        session numbers it. Returns its seq."""
        if step.step_number != self.totals.step_count:
            step = step.model_copy(update={"step_number": self.totals.step_count})
        seq = await self._emit(step)
        self.totals.add(step)
        return seq

    async def complete(self, final_answer: str | None, status: SessionStatus | str) -> None:
        await self._emit(SessionCompleted(final_answer=final_answer, status=SessionStatus(status)))
        self.closed = True

    @property
    def step_count(self) -> int:
        return self.totals.step_count

    @property
    def metadata(self) -> TrajectoryMetadata:
        """Running totals, by the same rule as the stream's fold (``schemas.totals``)."""
        return self.totals.metadata()


class Tracker:
    """Opens sessions and ships their events; use as ``async with Tracker(...) as tracker``."""

    def __init__(self, bootstrap: str, topics: Topics, codec: Codec, spool_dir: Path, *,
                 max_pending: int = 10_000, linger_ms: int = 5, resend_window_s: float = 30.0,
                 retry_interval_s: float = 1.0, request_timeout_ms: int = 5_000, settle_s: float = 2.0,
                 epoch_file: Path | None = None, topic: TopicSpec | None = None) -> None:
        self.bootstrap = bootstrap
        topic = topic or topics.session_events  # another topic: e.g. capture's dead letters, with its own spool
        self.topic = topic.name
        self.codec = codec
        self.spool_dir = spool_dir
        self.resend_window_s = resend_window_s
        self.retry_interval_s = retry_interval_s
        self.epoch_file = epoch_file
        self._producer_args: dict[str, Any] = dict(
            bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all", max_batch_size=512 * 1024,
            request_timeout_ms=request_timeout_ms, retry_backoff_ms=100, compression_type=None)
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(maxsize=max_pending)
        self._recent: deque[tuple[float, bytes, bytes]] = deque()
        self._producer: AIOKafkaProducer | None = None
        self._spool: Spool | None = None
        self._sender: asyncio.Task[None] | None = None
        self._epoch_mtime: float | None = None
        self._partitions: dict[bytes, int] = {}
        self._ready = False
        self.partitions: int | None = topic.partitions
        self.settle_s = settle_s
        self._settle_rounds = 0
        self._settle_at: float | None = None
        self._partition_fn = DefaultPartitioner()
        self.sent = 0
        self.spooled = 0
        self.resent = 0

    @classmethod
    def from_config(cls, cfg: ArtConfig, **kwargs: Any) -> Tracker:
        """Bootstrap from config, or from the running embedded stack when none is configured."""
        data_dir = cfg.storage.data_dir
        bootstrap = cfg.kafka.bootstrap
        epoch_file = None
        if not bootstrap:
            info = read_stack_info(data_dir)
            if info is None:
                raise TrackingError("no kafka.bootstrap configured and no running stack: start `art up` first")
            bootstrap, epoch_file = info.bootstrap, stack_file(data_dir)
        codec = Codec(registry_for(cfg.kafka.schema_registry_url, data_dir))
        spool_dir = kwargs.pop("spool_dir", data_dir / "spool")
        return cls(bootstrap, cfg.kafka.topics(), codec, spool_dir, epoch_file=epoch_file, **kwargs)

    async def __aenter__(self) -> Tracker:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        self._spool = Spool(self.spool_dir)
        for orphan in orphaned_spools(self.spool_dir):  # left by trackers that died while spooling
            for key, value in orphan.frames():
                self._spool.append(key, value)
            orphan.clear()
            orphan.close()
        self._epoch_mtime = self._read_epoch_mtime()
        if not await self._ensure_producer():
            log.warning("broker %s unreachable at start: spooling to %s", self.bootstrap, self._spool.path)
        self._sender = asyncio.create_task(self._run_sender(), name="tracker-sender")

    async def start_session(self, *, agent_name: str, objective: str, group_id: str | None = None, model: str = "",
                            agent_config: dict[str, str] | None = None, success_criteria: list[str] | None = None,
                            session_id: str | None = None) -> TrackedSession:
        started = SessionStarted(objective=objective, group_id=group_id, model=model,
                                 agent_config=agent_config or {}, success_criteria=success_criteria or [])
        session = TrackedSession(self, session_id or str(uuid.uuid4()), agent_name, started)
        await session._emit(started)
        return session

    async def emit(self, event: SessionEvent) -> None:
        """Queue one event; waits while ``max_pending`` events are unsent (backpressure)."""
        await self.emit_raw(event.session_id.encode(), self.codec.encode(self.topic, event))

    async def emit_raw(self, key: bytes, value: bytes) -> None:
        if self._sender is None or self._sender.done():
            raise TrackingError("tracker is not running (use `async with Tracker(...)`)")
        await self._queue.put((key, value))

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued event is acknowledged or spooled."""
        await asyncio.wait_for(self._queue.join(), timeout_s)

    @property
    def spooled_pending(self) -> int:
        return self._spool.count if self._spool else 0

    async def close(self, timeout_s: float = 30.0) -> None:
        """Flush, try once more to drain the spool, then stop. Spooled events stay on disk."""
        if self._sender is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await self.flush(timeout_s)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._settle_at is not None and self._spool is not None:
            self._resend_recent()  # the settled re-send is still due: do it before leaving
        if self._spool is not None and self._spool.count and self._producer is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drain_spool(), timeout_s)
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
        if self._spool is not None:
            if self._spool.count:
                self._spool.sync()
                log.warning("%d events remain spooled in %s", self._spool.count, self._spool.path)
            self._spool.close()

    # --- sending --------------------------------------------------------------------------

    def _read_epoch_mtime(self) -> float | None:
        try:
            return self.epoch_file.stat().st_mtime if self.epoch_file else None
        except OSError:
            return None

    async def _run_sender(self) -> None:
        assert self._spool is not None
        while True:
            if self._settle_at is not None and time.monotonic() >= self._settle_at:
                self._settle_at = None
                self._resend_recent()  # once more, now that the restarted broker has settled
            if self._spool.count and not await self._drain_spool():
                await self._spool_queued(wait_s=self.retry_interval_s)
                continue
            wait = None if self._settle_at is None else max(0.0, self._settle_at - time.monotonic())
            try:
                batch = [await asyncio.wait_for(self._queue.get(), wait)]
            except TimeoutError:
                continue  # time for the settled re-send
            while not self._queue.empty() and len(batch) < 2000:
                batch.append(self._queue.get_nowait())
            await self._send(batch)
            for _ in batch:
                self._queue.task_done()
            self._check_epoch()

    async def _send_batches(self, batch: list[tuple[bytes, bytes]]) -> list[bool]:
        """Send ``batch`` as one record batch per partition (no per-event future); which were acked."""
        assert self._producer is not None
        by_partition: dict[int, list[int]] = {}
        for i, (key, _) in enumerate(batch):
            by_partition.setdefault(self._partition_of(key), []).append(i)
        chunks: list[tuple[list[int], asyncio.Future[Any] | None]] = []
        for partition, indices in by_partition.items():
            start = 0
            while start < len(indices):
                builder = self._producer.create_batch()
                end = start
                while end < len(indices) and builder.append(key=batch[indices[end]][0], value=batch[indices[end]][1],
                                                            timestamp=None) is not None:
                    end += 1
                alone = end == start  # larger than a batch: the plain path sends it by itself
                end = start + 1 if alone else end
                try:
                    if alone:
                        key, value = batch[indices[start]]
                        future = await self._producer.send(self.topic, value, key=key, partition=partition)
                    else:
                        future = await self._producer.send_batch(builder, self.topic, partition=partition)
                except (KafkaError, AssertionError) as exc:  # AssertionError: producer never started
                    log.debug("send failed: %s", exc)
                    future = None
                chunks.append((indices[start:end], future))
                start = end
        results = await asyncio.gather(*(f for _, f in chunks if f is not None), return_exceptions=True)
        outcome = iter(results)
        ok = [False] * len(batch)
        for indices, future in chunks:
            sent = future is not None and not isinstance(next(outcome), BaseException)
            for i in indices:
                ok[i] = sent
        return ok

    async def _spool_queued(self, wait_s: float) -> None:
        """While the broker is away: move queued events to disk, so agents keep going."""
        assert self._spool is not None
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                key, value = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                return
            self._spool.append(key, value)
            self.spooled += 1
            self._queue.task_done()

    async def _send(self, batch: list[tuple[bytes, bytes]]) -> None:
        assert self._spool is not None
        if self._producer is None or not await self._topic_ready():
            for key, value in batch:
                self._spool.append(key, value)
            self.spooled += len(batch)
            return
        ok = await self._send_batches(batch)
        now = time.monotonic()
        failed_from: int | None = None
        for i, sent in enumerate(ok):
            if sent and failed_from is None:
                self._recent.append((now, *batch[i]))
                self.sent += 1
            elif failed_from is None:
                failed_from = i
        if failed_from is not None:  # keep order: everything from the first failure goes to the spool
            self._outage()
            for key, value in batch[failed_from:]:
                self._spool.append(key, value)
                self.spooled += 1
        while self._recent and self._recent[0][0] < now - self.resend_window_s:
            self._recent.popleft()

    def _partition_of(self, key: bytes) -> int | None:
        """aiokafka's default (murmur2) partition, cached per session: hashing every event costs ~20 µs."""
        partition = self._partitions.get(key)
        if partition is None:
            assert self._producer is not None
            known = self._producer.client.cluster.partitions_for_topic(self.topic)
            if not known:
                return None  # metadata not there yet: let the producer decide, with the same function
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            ids = sorted(known)
            partition = self._partition_fn(key, ids, ids)
            self._partitions[key] = partition
        return partition

    async def _topic_ready(self) -> bool:
        """Send only while the topic exists with its partitions: a send to a missing topic (a broker
        that restarted before its topics were recreated) would auto-create it with the wrong count.
        Asking for all topics' metadata creates nothing."""
        if self._ready:
            return True
        assert self._producer is not None
        try:
            metadata = await self._producer.client.fetch_all_metadata()
        except KafkaError:
            return False
        partitions = metadata.partitions_for_topic(self.topic) or set()
        self._ready = bool(partitions) and (self.partitions is None or len(partitions) == self.partitions)
        if self._ready:
            self._partitions.clear()
        return self._ready

    async def _drain_spool(self) -> bool:
        """Re-send, in order, what the broker may have lost (the recent window acknowledged before an
        outage) and then the spool; True when the spool is empty afterwards."""
        assert self._spool is not None
        if not await self._ensure_producer() or not await self._topic_ready():
            return False
        assert self._producer is not None
        resend = [(k, v) for _, k, v in self._recent]
        frames = list(self._spool.frames())
        try:
            futures = [await self._producer.send(self.topic, v, key=k, partition=self._partition_of(k))
                       for k, v in resend + frames]
            await asyncio.gather(*futures)
        except (KafkaError, AssertionError) as exc:
            self._ready = False
            log.debug("spool drain failed: %s", exc)
            return False
        self._spool.clear()
        now = time.monotonic()
        self._recent.clear()
        self._recent.extend((now, k, v) for k, v in resend + frames)
        self.resent += len(resend)
        self.sent += len(frames)
        if self._settle_rounds:  # recovering from an outage: re-send the window again after a pause
            self._settle_rounds -= 1
            self._settle_at = time.monotonic() + self.settle_s
        log.info("re-sent %d spooled and %d recent events", len(frames), len(resend))
        return True

    async def _ensure_producer(self) -> bool:
        """A started producer, or None while the broker cannot be reached."""
        if self._producer is not None:
            return True
        producer = AIOKafkaProducer(**self._producer_args)
        try:
            await producer.start()
        except KafkaError:
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        return True

    def _check_epoch(self) -> None:
        mtime = self._read_epoch_mtime()
        if mtime is not None and mtime != self._epoch_mtime:
            self._epoch_mtime = mtime
            self._outage()  # the stack restarted its broker: wait until the topics exist again
            self._resend_recent()

    def _outage(self) -> None:
        """The broker failed or restarted. A freshly restarted embedded broker has been seen to
        acknowledge writes it then lost (concurrent first writes to a new partition), so the recent
        window is re-sent once more after ``settle_s``; duplicates are dropped downstream."""
        self._ready = False
        self._settle_rounds = 1

    def _resend_recent(self) -> None:
        """Queue the recent window again; downstream drops the duplicates by (session, seq)."""
        assert self._spool is not None
        for _, key, value in self._recent:
            self._spool.append(key, value)
        self.resent += len(self._recent)
        self._recent.clear()
