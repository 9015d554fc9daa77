"""`art bench …`: benchmarks that print one JSON object as their last line."""

from __future__ import annotations

from pathlib import Path
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
           votes: Annotated[int, typer.Option(help="pipeline measurements per rate, the majority deciding (odd)")] = 3,
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
                             workers=workers, sinks=sinks, repeats=repeats, votes=votes, baseline=baseline)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise typer.BadParameter(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    emit(run(opts, progress))


@bench_app.command("chaos")
def chaos(sessions: Annotated[int, typer.Option(help="agent sessions (10-30 steps each, groups of 4)")] = 200,
          kills: Annotated[int, typer.Option(help="kill -9s of worker, sink, broker or the whole stack")] = 10,
          fuzz: Annotated[int, typer.Option(help="poison records of every kind, sent after the kills")] = 10_000,
          processes: Annotated[int, typer.Option(help="agent processes")] = 20,
          seed: Annotated[int, typer.Option(help="random seed (sessions, kill targets and moments, poison)")] = 1,
          ) -> None:
    """Kill -9s and poison against `art up`: lost, duplicated, dead letters vs bad records sent, recovery per kill."""
    from bench.chaos import run
    from bench.measure import emit, progress

    emit(run(sessions, kills, fuzz, processes, seed, progress=progress))


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


@bench_app.command("serve")
def serve(model_dir: Annotated[Path | None, typer.Option(help="HF model directory (default: the SmolLM2 that "
                                                              "`art models base` converted)")] = None,
          chats: Annotated[int, typer.Option(help="concurrent chats (and sequential baseline calls)")] = 8,
          max_tokens: Annotated[int, typer.Option(help="completion tokens per chat (exactly, both sides)")] = 64,
          repeats: Annotated[int, typer.Option(help="runs per side (medians, spread printed)")] = 3) -> None:
    """Completion tokens/s of `art serve` with concurrent chats against sequential generate() on the same model."""
    from bench.measure import emit
    from bench.serve import bench_serve

    if chats < 1 or max_tokens < 1 or repeats < 1:
        raise typer.BadParameter("--chats, --max-tokens and --repeats must be at least 1")
    emit(bench_serve(model_dir or _converted_model(), chats=chats, max_tokens=max_tokens, repeats=repeats))


@bench_app.command("proxy")
def proxy(rate: Annotated[float, typer.Option(help="calls/s of the open-loop latency rounds")] = 200.0,
          seconds: Annotated[float, typer.Option(help="length of each round")] = 5.0,
          repeats: Annotated[int, typer.Option(help="direct/proxied round pairs (medians, spread)")] = 3,
          concurrency: Annotated[int, typer.Option(help="callers of the closed-loop throughput rounds")] = 32) -> None:
    """Latency the recording proxy adds per call (p50/p99) and calls/s, against the same upstream called
    directly in the same run; lost = proxied calls without their step event on the topic."""
    from bench.measure import emit
    from bench.proxy import bench_proxy

    if rate <= 0 or seconds <= 0:
        raise typer.BadParameter("--rate and --seconds must be positive")
    if repeats < 1 or concurrency < 1:
        raise typer.BadParameter("--repeats and --concurrency must be at least 1")
    emit(bench_proxy(rate=rate, seconds=seconds, repeats=repeats, concurrency=concurrency))


@bench_app.command("ui")
def ui(trajectories: Annotated[int, typer.Option(help="synthetic trajectories in a fresh store")] = 1_000_000,
       repeats: Annotated[int, typer.Option(help="timed runs per page (medians, spread printed)")] = 5,
       workdir: Annotated[Path | None, typer.Option(help="folder for the temporary store")] = None) -> None:
    """Trajectory list page times of `art ui` (through its read-only path) at a million rows, against the
    reader's floor and naive OFFSET paging in the same run."""
    from bench.measure import emit, progress
    from bench.ui import bench_ui

    emit(bench_ui(trajectories, repeats=repeats, workdir=workdir, say=progress))


@bench_app.command("loop")
def loop(rounds: Annotated[int, typer.Option(help="at most this many rounds (1-3)", min=1, max=3)] = 3,
         groups: Annotated[int | None, typer.Option(help="training missions per round "
                                                         "(default [art.learning] groups)")] = None,
         per_family: Annotated[int | None, typer.Option(help="held-out missions per family (default 12: 48 "
                                                             "missions)")] = None,
         objective: Annotated[str | None, typer.Option(help="sft | awr | dpo (default [art.learning] objective)")
                              ] = None,
         data_dir: Annotated[Path | None, typer.Option(help="work folder (default: a fresh temporary one)")] = None,
         models_dir: Annotated[Path | None, typer.Option(help="where the converted SmolLM2 lives or is converted "
                                                               "to (default: the configured models dir)")] = None,
         budget_s: Annotated[float, typer.Option(help="loop time budget: no round starts that the last round's "
                                                      "duration says would end later (the issue's 20 min)", min=1)
                             ] = 1200.0,
         slow_test: Annotated[bool, typer.Option(help="then run the marked real-model test")] = True) -> None:
    """Base vs champion on the held-out suite after at most 3 rounds of learning from own runs (SmolLM2)."""
    from bench.loop import bench_loop
    from bench.measure import emit, progress
    from learning.errors import LearningError
    from trainer.errors import TrainerError

    try:
        result = bench_loop(rounds=rounds, groups=groups, per_family=per_family, objective=objective,
                            data_dir=data_dir, models_dir=models_dir, budget_s=budget_s, slow_test=slow_test,
                            say=progress)
    except (LearningError, TrainerError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    emit(result)


@bench_app.command("train")
def train(steps: Annotated[int, typer.Option(help="optimizer steps per measurement")] = 10,
          repeats: Annotated[int, typer.Option(help="alternating fresh processes per side (medians)")] = 3,
          model: Annotated[str, typer.Option(help="tiny (≈20M, built here) or smollm2 (`art models base`)")] = "tiny",
          batch_size: Annotated[int, typer.Option(help="examples per step")] = 8,
          workdir: Annotated[Path | None, typer.Option(help="folder for the model and data (default: a new "
                                                            "temporary folder)")] = None) -> None:
    """Training tokens/s of `art train` against the HF Trainer on the same model and data."""
    from bench.train import bench_train

    if model not in ("tiny", "smollm2"):
        raise typer.BadParameter(f"--model must be tiny or smollm2, not {model!r}")
    if steps < 2:
        raise typer.BadParameter("--steps must be at least 2 (step 1 is the untimed warm-up)")
    if repeats < 1 or batch_size < 1:
        raise typer.BadParameter("--repeats and --batch-size must be at least 1")
    path = _converted_model() if model == "smollm2" else None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    bench_train(steps=steps, repeats=repeats, model=path, batch_size=batch_size, workdir=workdir)  # JSON summary last


def _converted_model() -> Path:
    """The SmolLM2 `art models base` converted, or a one-line error and exit 1."""
    from bench.serve import default_model_dir

    try:
        return default_model_dir()
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
