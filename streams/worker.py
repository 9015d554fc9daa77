"""Entry point of one stream worker process: ``python -m streams.worker --help``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli.logs import configure_logging
from config.settings import load_config
from schemas.codec import Codec
from schemas.registry import registry_for
from schemas.runtime import free_port
from store.clickhouse import writer
from streams.app import create_app
from streams.judging import attach_judging
from streams.mirror import Mirror
from streams.sessions import SessionProcessor, attach


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="streams.worker", description="Run one Faust stream worker.")
    parser.add_argument("--config", type=Path, default=None, help="art.toml (default: ./art.toml or $ART_CONFIG)")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap host:port")
    parser.add_argument("--clickhouse", default="", help="ClickHouse DSN for mirror repairs (empty: none)")
    parser.add_argument("--web-port", type=int, default=0, help="port of the web view (0: any free port)")
    parser.add_argument("--no-judging", action="store_true", help="do not judge trajectories or assign rewards")
    parser.add_argument("--log-epoch", type=int, default=int(os.environ.get("ART_LOG_EPOCH", "0")))
    args = parser.parse_args(argv)
    configure_logging()
    cfg = load_config(args.config)
    codec = Codec(registry_for(cfg.kafka.schema_registry_url, cfg.storage.data_dir))
    mirror = Mirror(lambda: writer(cfg, args.clickhouse), codec) if args.clickhouse else None
    app = create_app(cfg, args.bootstrap, args.web_port or free_port())
    attach(app, SessionProcessor(app, cfg, codec, mirror, log_epoch=args.log_epoch))
    if not args.no_judging:
        attach_judging(app, cfg, codec, log_epoch=args.log_epoch)
    from faust.worker import Worker

    sys.argv = [sys.argv[0]]
    Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
