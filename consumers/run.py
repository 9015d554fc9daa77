"""Entry point of one sink process: ``python -m consumers.run --help``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from cli.logs import configure_logging
from config.settings import load_config
from consumers.sink import ClickHouseSink, log_progress
from schemas.codec import Codec
from schemas.registry import registry_for
from schemas.runtime import Watermark, write_watermark
from store.clickhouse import writer


async def _run(args: argparse.Namespace) -> None:
    cfg = load_config(args.config)
    dsn = args.clickhouse or cfg.clickhouse_dsn()
    codec = Codec(registry_for(cfg.kafka.schema_registry_url, cfg.storage.data_dir))
    client = writer(cfg, dsn)  # with the stack's writer secret when dsn is its gateway
    on_commit = None
    if args.publish_watermark:
        name = f"sink-{os.getpid()}"

        def on_commit(epoch: int, offsets: dict[str, dict[int, int]]) -> None:
            write_watermark(cfg.storage.data_dir, name, Watermark(log_epoch=epoch, offsets=offsets))

    sink = ClickHouseSink(args.bootstrap or cfg.kafka.bootstrap, cfg.kafka.topics(), codec, client,
                          group_id=f"{cfg.kafka.topic_prefix}sink", log_epoch=args.log_epoch,
                          max_records=cfg.sink.batch_records, poll_ms=cfg.sink.poll_ms,
                          decode_in_clickhouse=not args.decode_in_python, on_commit=on_commit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sink.stop)
    tick = log_progress(sink)

    async def report() -> None:
        while True:
            await asyncio.sleep(1)
            tick()

    reporter = asyncio.create_task(report())
    try:
        await sink.run()
    finally:
        reporter.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="consumers.run", description="Run one ClickHouse sink process.")
    parser.add_argument("--config", type=Path, default=None, help="art.toml (default: ./art.toml or $ART_CONFIG)")
    parser.add_argument("--bootstrap", default="", help="Kafka bootstrap host:port (default: from config)")
    parser.add_argument("--clickhouse", default="", help="ClickHouse DSN (default: from config)")
    parser.add_argument("--log-epoch", type=int, default=int(os.environ.get("ART_LOG_EPOCH", "0")))
    parser.add_argument("--decode-in-python", action="store_true",
                        help="decode session events here instead of in ClickHouse (e.g. a cluster without the "
                             "landing views, or a ClickHouse without the Variant type)")
    parser.add_argument("--publish-watermark", action="store_true",
                        help="after each commit, publish what the store has under <data_dir>/run/watermarks "
                             "(the embedded stack's durability signal for SDKs)")
    args = parser.parse_args(argv)
    configure_logging()
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
