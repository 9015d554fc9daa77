"""The stream workers' fetch wait comes from configuration (Faust hard-codes 1500 ms).

Why it matters: the embedded broker answers a waiting fetch only when its wait ends, so the wait is
added to every Faust hop of the pipeline (streams/transport.py). This checks the number the
started consumer's fetcher puts in its fetch requests, against the real broker."""

from __future__ import annotations

import asyncio

import faust

from config.settings import ArtConfig, StreamConfig
from streams.app import create_app


def _fetch_wait_of_started_worker_consumer(app: faust.App) -> int:
    async def go() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # what the worker thread starts
        await consumer.start()
        try:
            return int(consumer._fetcher._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    return asyncio.run(go())


def test_worker_consumer_fetches_with_the_configured_wait(kafka_bootstrap: str) -> None:
    assert StreamConfig().fetch_max_wait_ms == 100
    app = create_app(ArtConfig(stream=StreamConfig(fetch_max_wait_ms=123)), kafka_bootstrap, 6066)
    assert _fetch_wait_of_started_worker_consumer(app) == 123


def test_plain_faust_would_wait_1500_ms(kafka_bootstrap: str) -> None:
    """The override is needed: Faust's own worker consumer waits 1.5 s per fetch."""
    app = faust.App("plain-faust-probe", broker=f"kafka://{kafka_bootstrap}", web_port=6067)
    assert _fetch_wait_of_started_worker_consumer(app) == 1500
