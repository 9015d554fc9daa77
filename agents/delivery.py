"""How the tracking SDK gets encoded events to the broker and keeps each until it is durable.

Acknowledged means durable, per backend (``StackInfo.durable``):

- ``broker`` (Apache Kafka, acks=all, replicated): the broker's ack is enough;
- ``store`` (the embedded Tansu broker keeps its log in memory): an event is durable only when the
  store has it. Sinks publish a watermark per log epoch and partition (``schemas.runtime``); an
  acknowledged event is kept (in memory, and in the spool file if it came from there) until the
  watermark of the epoch it was sent in passes its offset. When the stack reports a new epoch (its
  broker lost the log) every event not yet durable is sent again; the SDK also follows the stack's
  address card, so a restarted stack is found again (same ports, or a new bootstrap).

While the broker cannot be reached, events go to an append-only spool file and are re-sent in order
later; a spool is emptied only when everything sent from it is durable. A freshly restarted embedded
broker has been seen to acknowledge writes it then lost, so after a new epoch what was sent in the
first ``settle_s`` is sent once more. Duplicates are dropped downstream; losses would not be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from agents.spool import Spool, orphaned_spools
from schemas.limits import MAX_EVENT_BYTES
from schemas.runtime import read_stack_info, read_watermark

log = logging.getLogger(__name__)
Frame = tuple[bytes, bytes]  # key, value


@dataclass
class Unconfirmed:
    """An acknowledged event that is not durable yet."""

    key: bytes
    value: bytes
    epoch: int
    offset: int
    spooled: bool  # it is (also) in the spool file


@dataclass
class DeliveryStats:
    sent: int = 0
    spooled: int = 0
    resent: int = 0
    rejected: int = 0  # frames over the size limit found in an adopted spool (moved aside)


class Delivery:
    """Sends (key, value) frames from ``queue`` in order; see the module docstring for durability."""

    def __init__(self, bootstrap: str, topic: str, partitions: int | None, spool_dir: Path, *,
                 stack_dir: Path | None = None, durable: str = "broker", linger_ms: int = 5,
                 request_timeout_ms: int = 5_000, retry_interval_s: float = 1.0, settle_s: float = 2.0,
                 poll_s: float = 0.2, max_unconfirmed_bytes: int = 256 * 1024 * 1024,
                 max_pending: int = 10_000) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.spool_dir = spool_dir
        self.stack_dir = stack_dir
        self.durable = durable
        self.retry_interval_s = retry_interval_s
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.max_unconfirmed_bytes = max_unconfirmed_bytes
        self.linger_ms = linger_ms
        self.request_timeout_ms = request_timeout_ms
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=max_pending)
        self.stats = DeliveryStats()
        self.epoch: int | None = None
        self._producer: AIOKafkaProducer | None = None
        self._spool: Spool | None = None
        self._spool_sent = 0  # frames of the spool file already sent (in this generation of the file)
        self._unconfirmed: dict[int, deque[Unconfirmed]] = {}
        self._unconfirmed_bytes = 0
        self._resend: deque[tuple[bytes, bytes, bool]] = deque()  # before anything new: (key, value, spooled)
        self._settle_at: float | None = None
        self._settle_log: list[tuple[bytes, bytes, bool]] = []
        self._partitions: dict[bytes, int] = {}
        self._partition_fn = DefaultPartitioner()
        self._ready = False
        self._followed_at = 0.0
        self._confirmed_at = 0.0
        self._in_flight: list[Frame] = []  # taken from the queue, not yet acknowledged or spooled
        self._task: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._spool = Spool.create(self.spool_dir)
        for orphan in orphaned_spools(self.spool_dir):  # left by trackers that died before their events were durable
            self._spool.append_many(self._within_limit(list(orphan.frames())))
            orphan.clear()
            orphan.close()
        self._follow(force=True)
        if not await self._ensure_producer():
            log.warning("broker %s unreachable at start: spooling to %s", self.bootstrap, self._spool.path)
        self._task = asyncio.create_task(self._run(), name="tracker-delivery")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def outstanding(self) -> int:
        """Events not yet durable: queued, spooled unsent, waiting to be re-sent or for the watermark."""
        spooled = self._spool.count - self._spool_sent if self._spool else 0
        return (self.queue.qsize() + len(self._in_flight) + spooled + len(self._resend) + len(self._settle_log)
                + sum(len(d) for d in self._unconfirmed.values()))

    @property
    def spooled_pending(self) -> int:
        return self._spool.count if self._spool else 0

    async def wait_durable(self, timeout_s: float) -> bool:
        """Wait until every event so far is durable (or ``timeout_s``); True when it is."""
        deadline = time.monotonic() + timeout_s
        while self.outstanding or self._settle_at is not None:
            if time.monotonic() >= deadline or not self.running:
                return False
            await asyncio.sleep(self.poll_s / 2)
        return True

    async def close(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) until everything is durable, then stop. What is not durable by
        then stays in the spool file for the next tracker on this spool directory."""
        if self.running:
            await self.wait_durable(timeout_s)
            assert self._task is not None
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._spool is not None:
            self._confirm(force=True)  # empties the spool file if all of it is durable
            leftovers = [(k, v) for k, v, spooled in [*self._resend, *self._settle_log] if not spooled]
            leftovers += [(u.key, u.value) for d in self._unconfirmed.values() for u in d if not u.spooled]
            leftovers += self._in_flight  # cut off mid-send: maybe acknowledged, maybe not
            while not self.queue.empty():
                leftovers.append(self.queue.get_nowait())
                self.queue.task_done()
            self._spool.append_many(leftovers)
            if self._spool.count:
                self._spool.sync()
                log.warning("%d events are not durable yet; kept in %s", self._spool.count, self._spool.path)
            self._spool.close()
        if self._producer is not None:  # what it still holds is in the spool: do not wait on it for long
            try:
                await asyncio.wait_for(self._producer.stop(), 10.0)
            except (KafkaError, TimeoutError):
                log.warning("the producer did not stop cleanly; what was not durable is in the spool")

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._spool is not None
        while True:
            await self._follow_stack()
            self._confirm()
            if self._settle_at is not None and time.monotonic() >= self._settle_at:
                self._settle_at = None
                self._resend.extend(self._settle_log)  # once more, now that the new broker settled
                self.stats.resent += len(self._settle_log)
                self._settle_log = []
            if (self._resend or self._spool.count > self._spool_sent) and not await self._drain():
                await self._spool_queued(self.retry_interval_s)
                continue
            if self._unconfirmed_bytes > self.max_unconfirmed_bytes:
                await asyncio.sleep(self.poll_s)  # the store is behind: stop taking events (backpressure)
                continue
            try:
                batch = [await asyncio.wait_for(self.queue.get(), self.poll_s)]
            except TimeoutError:
                continue
            while not self.queue.empty() and len(batch) < 2000:
                batch.append(self.queue.get_nowait())
            self._in_flight = batch
            await self._send(batch)
            self._in_flight = []
            for _ in batch:
                self.queue.task_done()

    async def _send(self, batch: list[Frame]) -> None:
        assert self._spool is not None
        if self._producer is None or not await self._topic_ready():
            self._spool.append_many(batch)
            self.stats.spooled += len(batch)
            return
        acked = await self._send_batches(batch)
        failed_from = next((i for i, a in enumerate(acked) if a is None), None)
        for (key, value), at in zip(batch[:failed_from], acked[:failed_from], strict=True):
            assert at is not None
            self._sent(key, value, at, spooled=False)
        self.stats.sent += len(batch) if failed_from is None else failed_from
        if failed_from is not None:  # keep order: everything from the first failure goes to the spool
            self._outage()
            self._spool.append_many(batch[failed_from:])
            self.stats.spooled += len(batch) - failed_from

    async def _drain(self) -> bool:
        """Send what must go first (re-sends, then unsent spooled frames), in order; True when all went."""
        assert self._spool is not None
        if not await self._ensure_producer() or not await self._topic_ready():
            return False
        resend = list(self._resend)
        unsent = self._within_limit(list(self._spool.frames(self._spool_sent)))
        frames = [(k, v) for k, v, _ in resend] + unsent
        acked = await self._send_batches(frames)
        if any(a is None for a in acked):
            self._outage()
            return False
        flags = [s for _, _, s in resend] + [True] * len(unsent)
        for (key, value), at, spooled in zip(frames, acked, flags, strict=True):
            assert at is not None
            self._sent(key, value, at, spooled=spooled)
        self._resend.clear()
        self._spool_sent = self._spool.count
        self.stats.resent += len(resend)
        self.stats.sent += len(unsent)
        if self.durable == "broker":
            self._spool.clear()
            self._spool_sent = 0
        if frames:
            log.info("re-sent %d spooled and %d recent events", len(unsent), len(resend))
        return True

    def _sent(self, key: bytes, value: bytes, at: tuple[int, int], *, spooled: bool) -> None:
        """An acknowledged event: durable now (broker), or kept until the store has it."""
        if self._settle_at is not None:
            self._settle_log.append((key, value, spooled))
        if self.durable == "broker" or self.epoch is None:
            return
        partition, offset = at
        self._unconfirmed.setdefault(partition, deque()).append(
            Unconfirmed(key, value, self.epoch, offset, spooled))
        self._unconfirmed_bytes += len(value)

    async def _spool_queued(self, wait_s: float) -> None:
        """While the broker is away: move queued events to disk, so agents keep going."""
        assert self._spool is not None
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                key, value = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return
            self._spool.append(key, value)
            self.stats.spooled += 1
            self.queue.task_done()

    def _within_limit(self, frames: list[Frame]) -> list[Frame]:
        """Frames an older SDK spooled over today's size limit would be refused forever: set them aside."""
        ok = [f for f in frames if len(f[1]) <= MAX_EVENT_BYTES]
        if len(ok) < len(frames):
            aside = self.spool_dir / "rejected"
            aside.mkdir(exist_ok=True)
            big = [f for f in frames if len(f[1]) > MAX_EVENT_BYTES]
            rejected = Spool.create(aside)
            rejected.append_many(big)
            rejected.close(remove_if_empty=False)
            self.stats.rejected += len(big)
            log.error("%d spooled events exceed %d bytes and can never be sent; moved to %s", len(big),
                      MAX_EVENT_BYTES, rejected.path)
        return ok

    # --- durability -----------------------------------------------------------------------

    def _confirm(self, force: bool = False) -> None:
        """Forget events the store has (watermark of their epoch); empty the spool once all of it is."""
        assert self._spool is not None
        now = time.monotonic()
        if not force and now - self._confirmed_at < self.poll_s:
            return
        self._confirmed_at = now
        if self.durable == "store" and self.stack_dir is not None and self._unconfirmed and self.epoch is not None:
            marks = read_watermark(self.stack_dir, self.epoch, self.topic)
            for partition, waiting in self._unconfirmed.items():
                stored = marks.get(partition, 0)
                while waiting and waiting[0].epoch == self.epoch and waiting[0].offset < stored:
                    self._unconfirmed_bytes -= len(waiting.popleft().value)
        if self._spool.count and self._spool_sent == self._spool.count and not any(
                u.spooled for d in self._unconfirmed.values() for u in d) and not any(
                s for _, _, s in [*self._resend, *self._settle_log]):
            self._spool.clear()
            self._spool_sent = 0

    def _follow(self, force: bool = False) -> bool:
        """Re-read the stack's card (every ``poll_s``); True when the producer must be rebuilt."""
        now = time.monotonic()
        if self.stack_dir is None or (not force and now - self._followed_at < self.poll_s):
            return False
        self._followed_at = now
        info = read_stack_info(self.stack_dir)
        if info is None:
            return False  # the stack is down: keep spooling until it is back
        self.durable = info.durable
        rebuild = info.bootstrap != self.bootstrap
        if rebuild:
            log.info("the stack moved from %s to %s: reconnecting", self.bootstrap, info.bootstrap)
            self.bootstrap = info.bootstrap
        if self.epoch is None:
            self.epoch = info.log_epoch
        elif info.log_epoch != self.epoch:
            log.warning("the broker lost its log (epoch %d -> %d): re-sending what the store does not have",
                        self.epoch, info.log_epoch)
            self.epoch = info.log_epoch
            for waiting in self._unconfirmed.values():
                self._resend.extend((u.key, u.value, u.spooled) for u in waiting)
            self._unconfirmed.clear()
            self._unconfirmed_bytes = 0
            self._outage()
            self._settle_log = []
            self._settle_at = time.monotonic() + self.settle_s
        return rebuild

    async def _follow_stack(self) -> None:
        if self._follow() and self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
            self._producer = None
            self._ready = False

    def _outage(self) -> None:
        """The broker failed or lost its log: check the topic again before the next send."""
        self._ready = False

    # --- the producer ---------------------------------------------------------------------

    async def _ensure_producer(self) -> bool:
        """A started producer, or False while the broker cannot be reached."""
        if self._producer is not None:
            return True
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=self.linger_ms, acks="all", max_batch_size=512 * 1024,
            request_timeout_ms=self.request_timeout_ms, retry_backoff_ms=100, compression_type=None,
            max_request_size=2 * MAX_EVENT_BYTES)
        try:
            await producer.start()
        except KafkaError:
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        return True

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

    async def _send_batches(self, batch: list[Frame]) -> list[tuple[int, int] | None]:
        """Send ``batch`` as one record batch per partition (no per-event future); per event, its
        (partition, offset) once acknowledged, or None."""
        assert self._producer is not None
        by_partition: dict[int | None, list[int]] = {}
        for i, (key, _) in enumerate(batch):
            by_partition.setdefault(self._partition_of(key), []).append(i)
        chunks: list[tuple[list[int], asyncio.Future[Any] | None]] = []
        for partition, indices in by_partition.items():
            start = 0
            while start < len(indices):
                builder = self._producer.create_batch()
                end = start
                while partition is not None and end < len(indices) and builder.append(
                        key=batch[indices[end]][0], value=batch[indices[end]][1], timestamp=None) is not None:
                    end += 1
                alone = end == start  # larger than a batch: the plain path sends it by itself
                end = start + 1 if alone else end
                try:
                    if alone:
                        key, value = batch[indices[start]]
                        future = await self._producer.send(self.topic, value, key=key, partition=partition)
                    else:
                        future = await self._producer.send_batch(builder, self.topic, partition=partition)
                except MessageSizeTooLargeError:
                    raise  # checked before it was queued: a bug, not an outage
                except (KafkaError, AssertionError) as exc:  # AssertionError: producer never started
                    log.debug("send failed: %s", exc)
                    future = None
                chunks.append((indices[start:end], future))
                start = end
        results = await asyncio.gather(*(f for _, f in chunks if f is not None), return_exceptions=True)
        outcome = iter(results)
        acked: list[tuple[int, int] | None] = [None] * len(batch)
        for indices, future in chunks:
            meta = next(outcome) if future is not None else None
            if meta is None or isinstance(meta, BaseException):
                continue
            for n, i in enumerate(indices):  # a record batch's metadata carries its base offset
                acked[i] = (meta.partition, meta.offset + n)
        return acked
