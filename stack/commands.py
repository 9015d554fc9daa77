"""Stack commands: init, up, sql, stats."""

from __future__ import annotations

import csv
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.errors import ConfigError
from schemas.runtime import read_stack_info
from schemas.settings import ArtConfig, load_config
from store.clickhouse import StoreError, error_text, reader, writer

console = Console()
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="art.toml (default: ./art.toml or $ART_CONFIG)")]


def config_or_exit(path: Path | None) -> ArtConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; the caller raises what this returns."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def store_writer(cfg: ArtConfig) -> Any:
    """A writing client: the live stack's gateway (with its writer secret), or the store itself."""
    try:
        return writer(cfg)
    except StoreError as exc:
        raise fail(str(exc)) from None


@contextmanager
def store_reader(cfg: ArtConfig) -> Iterator[Any]:
    """The one read-only path (store.clickhouse.reader); any store error is one line and exit 1."""
    try:
        with reader(cfg) as client:
            yield client
    except StoreError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a refused or failed query: ClickHouse's own words, no traceback
        if isinstance(exc, typer.Exit):
            raise
        raise fail(error_text(exc)) from None


def up(config: ConfigOpt = None,
       workers: Annotated[int, typer.Option(help="stream worker processes")] = 1,
       sinks: Annotated[int, typer.Option(help="ClickHouse sink processes")] = 1,
       proxy_upstream: Annotated[str | None, typer.Option(
           help="also run the recording proxy in front of this OpenAI-compatible base URL")] = None,
       otlp: Annotated[bool | None, typer.Option(
           "--otlp/--no-otlp", help="also run the OTLP/HTTP receiver (default capture.otlp_enabled)")] = None) -> None:
    """Start the embedded stack (broker, ClickHouse, stream workers, sinks) until Ctrl-C or SIGTERM."""
    from stack.supervisor import Stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config_or_exit(config)
    if proxy_upstream is not None:
        cfg.capture.proxy_upstream = proxy_upstream
    if otlp is not None:
        cfg.capture.otlp_enabled = otlp
    running = read_stack_info(cfg.storage.data_dir)
    if running is not None:
        console.print(f"[red]error:[/red] a stack already runs for {cfg.storage.data_dir} (pid {running.pid})")
        raise typer.Exit(1)
    stack = Stack(cfg, config_path=config.resolve() if config else None, workers=workers, sinks=sinks)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = stack.start()
        console.print(f"[green]stack up[/green]: kafka {info.bootstrap}, clickhouse {info.clickhouse_url}, "
                      f"data {cfg.storage.data_dir} (Ctrl-C stops)")
        if info.proxy_url or info.otlp_url:
            console.print(f"capture: proxy {info.proxy_url or 'off'}, otlp {info.otlp_url or 'off'}")
        while not stopping:
            stack.check()
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        stack.stop()
        console.print("[green]stack stopped[/green]")


def sql(query: Annotated[str, typer.Argument(help="one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXISTS, "
                                                   "EXPLAIN); ClickHouse refuses anything else")],
        config: ConfigOpt = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json (JSON lines)")] = "table") -> None:
    """Run read-only SQL against the store and print the result (exit 1 with ClickHouse's reason if refused)."""
    if fmt not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {fmt!r}", 2)
    cfg = config_or_exit(config)
    with store_reader(cfg) as client:
        result = client.query(query)
    print_rows(list(result.column_names), result.result_rows, fmt)


def print_rows(columns: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)


def stats(config: ConfigOpt = None,
          top: Annotated[int, typer.Option(help="how many top performances to list")] = 5) -> None:
    """Totals, recent successes and the top performances (agent, reward, objective)."""
    with store_reader(config_or_exit(config)) as client:
        print_stats(client, top)


def print_stats(client: Any, top: int = 5) -> None:
    q = lambda s: client.query(s).result_rows  # noqa: E731
    total = q("SELECT count() FROM trajectories")[0][0]
    steps = q("SELECT count() FROM steps")[0][0]
    recent = q("SELECT count() FROM trajectories WHERE status = 'succeeded' "
               "AND completed_at > now64() - INTERVAL 1 DAY")[0][0]
    dead = q("SELECT count() FROM dead_letters")[0][0]
    console.print(f"Total trajectories: [bold]{total}[/bold]  steps: {steps}  "
                  f"recent successful (24 h): [bold]{recent}[/bold]  dead letters: {dead}")
    rows = q(f"""SELECT r.agent_name, round(r.total, 3), t.objective FROM
                 (SELECT session_id, argMax(agent_name, assigned_at) AS agent_name, argMax(total, assigned_at) AS total
                  FROM rewards GROUP BY session_id) AS r
                 INNER JOIN trajectories AS t USING session_id ORDER BY r.total DESC LIMIT {int(top)}""")
    table = Table("agent", "reward", "objective", title="Top performances")
    for agent, reward, objective in rows:
        table.add_row(agent, str(reward), objective[:80])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(sql)
    app.command()(stats)
