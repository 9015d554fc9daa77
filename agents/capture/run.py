"""Process entry for the capture servers: ``python -m agents.capture.run proxy|otlp …``.

What ``art proxy`` / ``art otlp`` run in the foreground, ``art up`` spawns as children and the
compose services run in production. Each process owns two trackers: session events, and dead
letters (own spool). SIGTERM stops accepting, completes open proxy sessions / maps buffered
traces, then flushes both trackers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from agents.capture.deadletters import DeadLetters
from agents.capture.proxy import RecordingProxy
from agents.capture.receiver import OtlpReceiver
from agents.capture.sessions import SessionBook
from agents.capture.traces import TraceBuffer
from agents.tracking import Tracker
from cli.logs import configure_logging
from config.settings import ArtConfig, load_config
from schemas.codec import Codec
from schemas.registry import registry_for

log = logging.getLogger(__name__)

DEAD_LETTER_SPOOL = "capture-dead-letters"


def make_trackers(cfg: ArtConfig, bootstrap: str | None, epoch_file: Path | None) -> tuple[Tracker, Tracker]:
    """(session events, dead letters): from the given broker, else from config or the running stack."""
    spool = cfg.storage.data_dir / "spool"
    topics = cfg.kafka.topics()
    if not bootstrap:
        return (Tracker.from_config(cfg),
                Tracker.from_config(cfg, spool_dir=spool / DEAD_LETTER_SPOOL, topic=topics.dead_letters))
    codec = Codec(registry_for(cfg.kafka.schema_registry_url, cfg.storage.data_dir))
    stack_dir = epoch_file.parent.parent if epoch_file else None  # <data_dir>/run/stack.json: follow it
    return (Tracker(bootstrap, topics, codec, spool, stack_dir=stack_dir),
            Tracker(bootstrap, topics, codec, spool / DEAD_LETTER_SPOOL, topic=topics.dead_letters,
                    stack_dir=stack_dir))


def build_app(kind: str, cfg: ArtConfig, events: Tracker, dead: Tracker, upstream: str | None) -> web.Application:
    capture = cfg.capture
    if kind == "proxy":
        if not upstream:
            raise ValueError("the proxy needs an upstream (--upstream or capture.proxy_upstream)")
        letters = DeadLetters(dead, "capture.proxy")
        book = SessionBook(events, idle_timeout_s=capture.session_idle_timeout_s, prices=capture.prices, dead=letters)
        return RecordingProxy(upstream, book, letters,
                              max_body_bytes=capture.max_proxy_body_bytes,
                              sweep_interval_s=min(5.0, capture.session_idle_timeout_s / 4)).app
    buffer = TraceBuffer(settle_s=capture.trace_settle_s, idle_s=capture.trace_idle_timeout_s,
                         max_spans=capture.max_open_spans)
    return OtlpReceiver(events, DeadLetters(dead, "capture.otlp"), buffer, max_body_bytes=capture.max_body_bytes,
                        prices=capture.prices).app


async def serve(kind: str, cfg: ArtConfig, *, host: str, port: int, upstream: str | None = None,
                bootstrap: str | None = None, epoch_file: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    events, dead = make_trackers(cfg, bootstrap, epoch_file)
    await events.start()
    await dead.start()
    runner: web.AppRunner | None = None
    try:
        runner = web.AppRunner(build_app(kind, cfg, events, dead, upstream), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True, backlog=1024).start()
        log.info("%s listening on http://%s:%d", kind, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await events.close()
        await dead.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agents.capture.run", description=__doc__)
    parser.add_argument("kind", choices=["proxy", "otlp"])
    parser.add_argument("--upstream", help="OpenAI-compatible base URL (proxy only)")
    parser.add_argument("--host", help="interface to listen on (default capture.host)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: config, else the running stack)")
    parser.add_argument("--epoch-file", type=Path, help="the embedded stack's stack.json (broker restarts)")
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    configure_logging(quiet=("aiokafka",))
    cfg = load_config(args.config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kind, cfg, host=args.host or cfg.capture.host, port=args.port,
                          upstream=args.upstream or cfg.capture.proxy_upstream, bootstrap=args.bootstrap,
                          epoch_file=args.epoch_file))


if __name__ == "__main__":
    main()
