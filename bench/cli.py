"""`art bench …`: benchmarks that print one JSON object as their last line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

bench_app = typer.Typer(help="Benchmarks (each prints one JSON object as its last line).", no_args_is_help=True)
console = Console(stderr=True)


@bench_app.command("ingest")
def ingest(agents: Annotated[int, typer.Option(help="number of agents")] = 200,
           steps: Annotated[int, typer.Option(help="steps per agent")] = 100,
           processes: Annotated[int, typer.Option(help="agent processes")] = 2,
           workers: Annotated[int, typer.Option(help="stream worker processes")] = 1,
           sinks: Annotated[int, typer.Option(help="sink processes")] = 1) -> None:
    """Agents -> Kafka -> stream + sink -> rows visible in ClickHouse, against raw aiokafka."""
    from bench.ingest import run

    result = run(agents, steps, processes, workers, sinks, progress=lambda m: console.print(m))
    print(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
