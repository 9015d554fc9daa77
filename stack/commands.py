"""Stack commands: up, sql, stats."""

from __future__ import annotations

import signal
import time
from typing import Annotated, Any

import typer
from clickhouse_connect.driver.client import Client
from rich.markup import escape
from rich.table import Table

from cli.logs import configure_logging
from cli.options import ConfigOpt
from cli.output import err, fail, out, print_rows
from cli.stores import store_reader
from config.settings import load_config
from schemas.runtime import read_stack_info


def up(config: ConfigOpt = None,
       workers: Annotated[int, typer.Option(help="stream worker processes")] = 1,
       sinks: Annotated[int, typer.Option(help="ClickHouse sink processes")] = 1,
       proxy_upstream: Annotated[str | None, typer.Option(
           help="also run the recording proxy in front of this OpenAI-compatible base URL")] = None,
       otlp: Annotated[bool | None, typer.Option(
           "--otlp/--no-otlp", help="also run the OTLP/HTTP receiver (default capture.otlp_enabled)")] = None,
       ui: Annotated[bool | None, typer.Option(
           "--ui/--no-ui", help="serve the read-only web UI (default ui.enabled; its URL is ui_url in stack.json)")]
       = None) -> None:
    """Start the embedded stack (broker, ClickHouse, stream workers, sinks) until Ctrl-C or SIGTERM."""
    from stack.ports import PortTaken
    from stack.supervisor import Stack

    configure_logging()
    cfg = load_config(config)
    if proxy_upstream is not None:
        cfg.capture.proxy_upstream = proxy_upstream
    if otlp is not None:
        cfg.capture.otlp_enabled = otlp
    if ui is not None:
        cfg.ui.enabled = ui
    running = read_stack_info(cfg.storage.data_dir)
    if running is not None:
        raise fail(f"a stack already runs for {cfg.storage.data_dir} (pid {running.pid})")
    stack = Stack(cfg, config_path=config.resolve() if config else None, workers=workers, sinks=sinks)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = stack.start()
    except PortTaken as exc:
        stack.stop()
        raise fail(str(exc)) from None
    except BaseException:
        stack.stop()
        raise
    try:
        err.print(f"[green]stack up[/green]: kafka {info.bootstrap}, clickhouse {info.clickhouse_url}, "
                      f"data {cfg.storage.data_dir} (Ctrl-C stops)")
        if info.ui_url:
            err.print(f"ui: {info.ui_url}")
        if info.proxy_url or info.otlp_url:
            err.print(f"capture: proxy {info.proxy_url or 'off'}, otlp {info.otlp_url or 'off'}")
        while not stopping:
            stack.check()
            time.sleep(0.5)
    finally:
        err.print("stopping…")
        stack.stop()
        err.print("[green]stack stopped[/green]")


def sql(query: Annotated[str, typer.Argument(help="one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXISTS, "
                                                   "EXPLAIN); ClickHouse refuses anything else")],
        config: ConfigOpt = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json (JSON lines)")] = "table") -> None:
    """Run read-only SQL against the store and print the result (exit 1 with ClickHouse's reason if refused)."""
    if fmt not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {fmt!r}", 2)
    if not query.strip():
        raise fail("empty query: pass one statement, e.g. art sql 'SELECT count() FROM trajectories'", 2)
    with store_reader(load_config(config)) as client:
        result = client.query(query)
        columns = list(result.column_names) or _columns_of(client, query)
    print_rows(columns, result.result_rows, fmt)


def _columns_of(client: Client, query: str) -> list[str]:
    """The column names of a statement that returned no block (an empty result has no header in
    ClickHouse's Native format): what ``DESCRIBE (query)`` says, or none for a non-SELECT."""
    try:
        return [row[0] for row in client.query(f"DESCRIBE ({query.strip().rstrip(';')})").result_rows]
    except Exception:  # SHOW, EXISTS, EXPLAIN … cannot be described: the result stays headerless
        return []


def stats(config: ConfigOpt = None,
          top: Annotated[int, typer.Option(help="how many top performances to list")] = 5) -> None:
    """Totals, recent successes and the top performances (agent, reward, objective)."""
    with store_reader(load_config(config)) as client:
        print_stats(client, top)


def print_stats(client: Client, top: int = 5) -> None:
    q = lambda s: client.query(s).result_rows  # noqa: E731
    total = q("SELECT count() FROM trajectories")[0][0]
    steps = q("SELECT count() FROM steps")[0][0]
    recent = q("SELECT count() FROM trajectories WHERE status = 'succeeded' "
               "AND completed_at > now64() - INTERVAL 1 DAY")[0][0]
    dead = q("SELECT count() FROM dead_letters")[0][0]
    out.print(f"Total trajectories: [bold]{total}[/bold]  steps: {steps}  "
                  f"recent successful (24 h): [bold]{recent}[/bold]  dead letters: {dead}")
    rows = q(f"""SELECT r.agent_name, round(r.total, 3), t.objective FROM
                 (SELECT session_id, argMax(agent_name, assigned_at) AS agent_name, argMax(total, assigned_at) AS total
                  FROM rewards GROUP BY session_id) AS r
                 INNER JOIN trajectories AS t USING session_id ORDER BY r.total DESC LIMIT {int(top)}""")
    table = Table("agent", "reward", "objective", title="Top performances")
    for agent, reward, objective in rows:
        table.add_row(escape(agent), str(reward), escape(objective[:80]))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(sql)
    app.command()(stats)
