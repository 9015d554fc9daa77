"""Faust's aiokafka transport with the stream workers' fetch wait taken from configuration.

Why: Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
On Apache Kafka that costs nothing, a fetch returns as soon as a record arrives. The embedded
broker (Tansu) does not answer a waiting fetch when records arrive: it answers when its own wait
ends, measured at up to about half of ``fetch_max_wait_ms`` later (BROKER.md). Every Faust hop of
the pipeline (session events -> sessions, trajectories -> judge, judging-groups -> groups) then
added up to ~750 ms, and p99 emit -> reward stayed above 2 s at any offered rate, even 1 event/s.
``stream.fetch_max_wait_ms`` (default 100, as the sink's poll) bounds each hop's wait instead; an
idle worker pays a few empty fetches a second for it.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when start() builds its fetcher, which has not happened yet
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_max_wait_ms", 1500))
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumer waits ``app.fetch_max_wait_ms`` per fetch."""

    Consumer = _Consumer


class StreamApp(faust.App):
    """A Faust App on that transport (the broker URL is always Kafka's protocol)."""

    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
