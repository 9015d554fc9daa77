"""`art replay`: re-score history with another judge / reward version (consumers/replay.py does the work)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.options import ConfigOpt
from cli.output import err, fail, out
from config.settings import load_config
from consumers.replay import ReplayError, ReplayRequest, parse_since, run_replay
from schemas.codec import Codec
from schemas.registry import registry_for
from schemas.runtime import read_stack_info
from store.clickhouse import writer


def replay(
    since: Annotated[str, typer.Option("--from", help="ISO date/time (UTC unless given) or 'beginning'")],
    judge: Annotated[str, typer.Option(help="judge to run, name@version (e.g. heuristic@2)")],
    reward_version: Annotated[str | None, typer.Option(
        help="RULER version to assign too (e.g. ruler-heuristic@2); omitted: judgments only")] = None,
    source: Annotated[str, typer.Option(help="topic (the log) or clickhouse (the mirror, older history)")] = "topic",
    idle_s: Annotated[float, typer.Option(help="stop reading the topic after this long without records")] = 3.0,
    engine: Annotated[str, typer.Option(
        help="sql: judge in ClickHouse, rows straight to the store (heuristic judge); python: judge here and "
             "produce events to the judgments/rewards topics; auto: sql when the judge is heuristic")] = "auto",
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON line")] = False,
) -> None:
    """Re-read finished trajectories and write judgments/rewards under new versions, next to the old ones."""
    cfg = load_config(config)
    request = ReplayRequest(since=parse_since(since), judge=judge, reward_version=reward_version,
                            source=source, idle_s=idle_s, engine=engine)  # type: ignore[arg-type]
    info = read_stack_info(cfg.storage.data_dir)
    bootstrap = cfg.kafka.bootstrap or (info.bootstrap if info else "")
    if not bootstrap:
        raise fail("no kafka.bootstrap configured and no running stack (`art up`)")
    needs_store = request.since is not None or request.source == "clickhouse" or request.engine != "python"
    client = writer(cfg) if needs_store else None
    codec = Codec(registry_for(cfg.kafka.schema_registry_url, cfg.storage.data_dir))
    epoch = info.log_epoch if info else None
    with Progress(TextColumn("[bold]replay[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=as_json) as bar:
        task = bar.add_task(f"{request.judge} from {request.source}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = asyncio.run(run_replay(cfg, request, codec, bootstrap, client=client, log_epoch=epoch,
                                            progress=progress))
        except ReplayError as exc:  # it started, then failed: a runtime failure, not a usage error
            raise fail(str(exc)) from None
    summary: dict[str, Any] = result.as_dict()
    summary["engine"] = "sql" if result.phases else "python"
    if as_json:
        print(json.dumps(summary))
        return
    out.print(f"[green]replayed[/green] {result.rescored} trajectories in {result.seconds:.1f} s "
                  f"({summary['engine']} engine): "
                  f"{result.judgments} judgments ({request.judge}), {result.rewards} rewards "
                  f"({request.reward_version or 'none'}) in {result.groups} groups; skipped "
                  f"{result.skipped_before_since} before --from, {result.duplicates} duplicates, "
                  f"{result.undecodable} undecodable, {result.judge_failures} judge failures")
    if result.note:
        err.print(f"[yellow]note:[/yellow] {result.note}")


def register(app: typer.Typer) -> None:
    app.command()(replay)
