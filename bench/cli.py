"""`art bench …`: benchmarks that print one JSON object as their last line."""

from __future__ import annotations

import json
from pathlib import Path
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


@bench_app.command("replay")
def replay(trajectories: Annotated[int, typer.Option(help="trajectories to produce, then re-score")] = 20_000,
           steps: Annotated[int, typer.Option(help="steps per trajectory")] = 5,
           engine: Annotated[str, typer.Option(help="sql (columnar, in ClickHouse) or python")] = "sql",
           baseline: Annotated[bool, typer.Option(help="also time the other engine in the same run")] = False) -> None:
    """Replay re-score rate with the heuristic judge, against the raw consume rate of the same topic."""
    from consumers.replay_bench import bench_replay

    if engine not in ("sql", "python"):
        raise typer.BadParameter(f"--engine must be sql or python, not {engine!r}")
    print(json.dumps(bench_replay(trajectories, steps=steps, engine=engine, baseline=baseline)))


@bench_app.command("serve")
def serve(model_dir: Annotated[Path | None, typer.Option(help="HF model directory (default: the SmolLM2 that "
                                                              "`art models base` converted)")] = None,
          chats: Annotated[int, typer.Option(help="concurrent chats (and sequential baseline calls)")] = 8,
          max_tokens: Annotated[int, typer.Option(help="completion tokens per chat (exactly, both sides)")] = 64,
          repeats: Annotated[int, typer.Option(help="runs per side (medians, spread printed)")] = 3) -> None:
    """Completion tokens/s of `art serve` with concurrent chats against sequential generate() on the same model."""
    from bench.serve import bench_serve, default_model_dir

    try:
        path = model_dir or default_model_dir()
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(json.dumps(bench_serve(path, chats=chats, max_tokens=max_tokens, repeats=repeats,
                                 say=lambda m: console.print(m))))
@bench_app.command("proxy")
def proxy(rate: Annotated[float, typer.Option(help="calls/s of the open-loop latency rounds")] = 200.0,
          seconds: Annotated[float, typer.Option(help="length of each round")] = 5.0,
          repeats: Annotated[int, typer.Option(help="direct/proxied round pairs (medians, spread)")] = 3,
          concurrency: Annotated[int, typer.Option(help="callers of the closed-loop throughput rounds")] = 32) -> None:
    """Latency the recording proxy adds per call (p50/p99) and calls/s, against the same upstream called
    directly in the same run; lost = proxied calls without their step event on the topic."""
    from bench.proxy import bench_proxy

    print(json.dumps(bench_proxy(rate=rate, seconds=seconds, repeats=repeats, concurrency=concurrency,
                                 progress=lambda m: console.print(m))))


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
    from learning.errors import LearningError
    from trainer.errors import TrainerError

    try:
        result = bench_loop(rounds=rounds, groups=groups, per_family=per_family, objective=objective,
                            data_dir=data_dir, models_dir=models_dir, budget_s=budget_s, slow_test=slow_test,
                            say=lambda m: console.print(m, highlight=False, markup=False))
    except (LearningError, TrainerError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(json.dumps(result))


@bench_app.command("train")
def train(steps: Annotated[int, typer.Option(help="optimizer steps per measurement")] = 10,
          repeats: Annotated[int, typer.Option(help="alternating fresh processes per side (medians)")] = 3,
          model: Annotated[str, typer.Option(help="tiny (≈20M, built here) or smollm2 (`art models base`)")] = "tiny",
          batch_size: Annotated[int, typer.Option(help="examples per step")] = 8,
          workdir: Annotated[Path | None, typer.Option(help="folder for the model and data (default: a new "
                                                            "temporary folder)")] = None) -> None:
    """Training tokens/s of `art train` against the HF Trainer on the same model and data."""
    from trainer.bench import bench_train

    if model not in ("tiny", "smollm2"):
        raise typer.BadParameter(f"--model must be tiny or smollm2, not {model!r}")
    path = None
    if model == "smollm2":
        from bench.serve import default_model_dir

        try:
            path = default_model_dir()
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    bench_train(steps=steps, repeats=repeats, model=path, batch_size=batch_size, workdir=workdir)  # JSON summary last


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
