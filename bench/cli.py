"""`art bench …`: benchmarks that print one JSON object as their last line."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

bench_app = typer.Typer(help="Benchmarks (each prints one JSON object as its last line).", no_args_is_help=True)


@bench_app.command("ingest")
def ingest(duration: Annotated[float, typer.Option(help="seconds of arrivals per offered rate")] = 30.0,
           steps: Annotated[int, typer.Option(help="steps per session")] = 20,
           think_ms: Annotated[float, typer.Option(help="pause between a session's events (ms)")] = 250.0,
           group_size: Annotated[int, typer.Option(help="sessions per RULER group, run side by side")] = 4,
           bound_ms: Annotated[float, typer.Option(help="p99 emit-to-reward bound (ms)")] = 2000.0,
           max_lag_ms: Annotated[float, typer.Option(help="p99 generator lateness allowed (ms)")] = 250.0,
           start_rate: Annotated[float, typer.Option(help="first offered rate (events/s)")] = 2000.0,
           factor: Annotated[float, typer.Option(help="coarse step between offered rates")] = 2.0,
           refine: Annotated[int, typer.Option(help="bisections after the coarse search")] = 3,
           max_rate: Annotated[float, typer.Option(help="highest offered rate tried")] = 200_000.0,
           min_rate: Annotated[float, typer.Option(help="lowest offered rate tried (below: sustained 0)")] = 250.0,
           drain_s: Annotated[float, typer.Option(help="wait for the last rewards after the last event (s)")] = 10.0,
           processes: Annotated[int, typer.Option(help="agent processes")] = 2,
           workers: Annotated[int, typer.Option(help="stream worker processes")] = 1,
           sinks: Annotated[int, typer.Option(help="sink processes")] = 1,
           repeats: Annotated[int, typer.Option(help="whole searches (medians and spread)")] = 1,
           baseline: Annotated[bool, typer.Option(help="search the raw aiokafka baseline too")] = True) -> None:
    """Highest offered rate with p99 emit-to-reward within the bound and nothing lost, against raw aiokafka."""
    from bench.ingest import IngestOptions, run
    from bench.load import Shape
    from bench.measure import emit, progress

    try:
        opts = IngestOptions(shape=Shape(steps=steps, think_s=think_ms / 1000.0, group_size=group_size),
                             duration_s=duration, bound_ms=bound_ms, max_lag_ms=max_lag_ms, start_rate=start_rate,
                             factor=factor, refine=refine, max_rate=max_rate, min_rate=min_rate,
                             drain_s=drain_s, processes=processes,
                             workers=workers, sinks=sinks, repeats=repeats, baseline=baseline)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise typer.BadParameter(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    emit(run(opts, progress))


@bench_app.command("replay")
def replay(trajectories: Annotated[int, typer.Option(help="trajectories to produce, then re-score")] = 100_000,
           runs: Annotated[int, typer.Option(help="measurements (median and spread)")] = 3,
           steps: Annotated[int, typer.Option(help="steps per trajectory")] = 5,
           engine: Annotated[str, typer.Option(help="sql (columnar, in ClickHouse) or python")] = "sql",
           baseline: Annotated[bool, typer.Option(help="also time the other engine in each run")] = False) -> None:
    """Replay re-score rate with the heuristic judge, against the raw consume rate of the same topic."""
    from bench.measure import emit
    from bench.replay import bench_replay

    if engine not in ("sql", "python"):
        raise typer.BadParameter(f"--engine must be sql or python, not {engine!r}")
    if trajectories < 1 or runs < 1 or steps < 1:
        raise typer.BadParameter("--trajectories, --runs and --steps must be at least 1")
    emit(bench_replay(trajectories, runs=runs, steps=steps, engine=engine, baseline=baseline))


@bench_app.command("train")
def train(steps: Annotated[int, typer.Option(help="optimizer steps per measurement")] = 10,
          repeats: Annotated[int, typer.Option(help="alternating fresh processes per side (medians)")] = 3) -> None:
    """Training tokens/s of `art train` against the HF Trainer on the same tiny model and data."""
    from bench.train import bench_train

    bench_train(steps=steps, repeats=repeats)  # prints per-run lines, then the JSON summary last


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
