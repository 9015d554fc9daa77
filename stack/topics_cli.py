"""Prepare an external cluster: ``python -m stack.topics_cli [--schema]``.

Creates every topic with its partition count and, with ``--schema``, the ClickHouse tables (what
``art up`` does for the embedded stack). Production runs it once before the workers start (the
compose file's one-shot ``init`` service):
auto-created topics get the broker's default partition count, and the session partition count
bounds worker parallelism, so topics are created explicitly, never by the first producer.
Idempotent: existing topics are left as they are (partitions are never changed here).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from aiokafka.errors import KafkaError

from cli.logs import configure_logging
from config.settings import load_config
from stack.broker import create_topics

log = logging.getLogger("stack.topics")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stack.topics_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="art.toml (default: ./art.toml or $ART_CONFIG)")
    parser.add_argument("--bootstrap", default="", help="host:port list (default: art.kafka.bootstrap)")
    parser.add_argument("--replication", type=int, default=1, help="replication factor of new topics")
    parser.add_argument("--schema", action="store_true", help="also create the ClickHouse database and tables")
    parser.add_argument("--cluster", action="store_true",
                        help="with --schema: the ON CLUSTER variant (store/cluster.py: Replicated* + Distributed)")
    parser.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the cluster")
    args = parser.parse_args(argv)
    configure_logging()
    cfg = load_config(args.config)
    bootstrap = args.bootstrap or cfg.kafka.bootstrap
    if not bootstrap:
        parser.error("no bootstrap: pass --bootstrap or set ART_KAFKA_BOOTSTRAP (the embedded stack makes its own)")
    topics = cfg.kafka.topics()
    specs = topics.all() + topics.internal()
    deadline = time.monotonic() + args.wait_s
    while True:
        try:
            created = asyncio.run(create_topics(bootstrap, specs, replication=args.replication))
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"cluster {bootstrap} not reachable within {args.wait_s:.0f} s: {exc}") from None
            log.info("waiting for %s (%s)", bootstrap, exc.__class__.__name__)
            time.sleep(2.0)
    for spec in specs:
        log.info("%s %s (%d partitions)", "created" if spec.name in created else "exists ", spec.name,
                 spec.partitions)
    if args.schema:
        create_schema(cfg.clickhouse_dsn(), cfg.clickhouse.database, cluster=args.cluster)
        log.info("ClickHouse tables ready in %s%s", cfg.clickhouse.database, " on the cluster" if args.cluster else "")


def create_schema(dsn: str, database: str, cluster: bool) -> None:
    from store.clickhouse import connect, ensure_schema

    if not cluster:
        ensure_schema(connect(dsn, database))
        return
    connect(dsn).command(f"CREATE DATABASE IF NOT EXISTS `{database}` ON CLUSTER '{{cluster}}'")
    client = connect(dsn, database)
    from store.cluster import cluster_statements

    for sql in cluster_statements():
        client.command(sql)


if __name__ == "__main__":
    main()
