"""`art eval MODEL` and `art loop`: measure a served model on the held-out suite; learn in rounds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="art.toml")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint serving the registry's models "
                                                     "(default: [art.models] llm_base_url, else a child `art serve`)")]


def _say(message: str) -> None:
    console.print(message, highlight=False, markup=False)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def eval_command(
    model: Annotated[str, typer.Argument(help="base, champion, champion:<specialization> or a registry model id")],
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    per_family: Annotated[int | None, typer.Option(help="held-out missions per family "
                                                        "(default [art.learning] eval_per_family)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="runs in flight at once")] = None,
    promote: Annotated[bool, typer.Option(help="promote when its task success beats the champion's by the margin")
                       ] = True,
) -> None:
    """Run the held-out mission suite with the ReAct runner against the served MODEL; store the metrics."""
    from config.errors import ConfigError
    from config.settings import load_config
    from learning.errors import LearningError

    try:
        art = load_config(config)
        if per_family is not None:
            art.learning.eval_per_family = per_family
        if concurrency is not None:
            art.learning.concurrency = concurrency
        asyncio.run(_eval(art, config, base_url, model, promote))
    except (LearningError, ConfigError) as exc:
        raise _fail(exc) from None


async def _eval(art: Any, config: Path | None, base_url: str | None, name: str, promote: bool) -> None:
    from agents.suite import build_suite
    from agents.tracking import Tracker
    from learning.evaluation import evaluate
    from learning.loop import LoopSettings
    from learning.session import open_session
    from trainer.registry import get_model, promote_if_better

    with open_session(art, config, base_url, _say) as session:
        model_id = session.resolve(name)
        missions = build_suite("heldout", per_family=art.learning.eval_per_family)
        settings = LoopSettings.from_config(art).eval_settings()
        _say(f"evaluating {model_id} on {len(missions)} held-out missions via {session.base_url}")
        done = [0]

        def on_run(_: Any) -> None:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == len(missions):
                _say(f"  {done[0]}/{len(missions)} runs")

        async with Tracker.from_config(art) as tracker, client_for(art, session.base_url, model_id) as llm:
            report = await evaluate(model_id, missions, llm, tracker, session.client, settings,
                                    art.storage.data_dir / "eval" / report_dir(model_id), flush=tracker.flush,
                                    on_run=on_run)
        for line in report.lines():
            typer.echo(line)
        if promote:
            decision = promote_if_better(session.client, get_model(session.client, model_id),
                                         art.learning.promotion_margin)
            typer.echo(f"{'promoted' if decision.promoted else 'not promoted'}: {decision.reason}")


def client_for(art: Any, base_url: str, model: str) -> Any:
    """The runs' LLM client: one attempt per call (a retry would queue the same work twice on a busy
    server), and the learning request timeout."""
    from agents.llm import OpenAIChatClient

    return OpenAIChatClient(base_url, model, timeout_s=art.learning.request_timeout_s, retries=0)


def report_dir(model_id: str) -> str:
    from datetime import UTC, datetime

    return f"{model_id}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def loop_command(
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    rounds: Annotated[int | None, typer.Option(help="rounds (default [art.learning] rounds)")] = None,
    groups: Annotated[int | None, typer.Option(help="training missions per round")] = None,
    objective: Annotated[str | None, typer.Option(help="sft | awr | dpo (the trainer's objectives)")] = None,
    teacher: Annotated[str | None, typer.Option(help="self: only the improved model's own runs; fleet: other "
                                                     "agents' runs too (distillation, reported separately)")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature of the training runs")] = None,
    top_p: Annotated[float | None, typer.Option(help="nucleus sampling of the training runs (1: off)")] = None,
    explore: Annotated[float | None, typer.Option(help="chance per training step that the reply must start with a "
                                                       "tool the run has not called yet (0: off)")] = None,
    per_family: Annotated[int | None, typer.Option(help="held-out missions per family")] = None,
    seed: Annotated[int, typer.Option(help="seeds which training missions each round draws")] = 0,
    budget_s: Annotated[float | None, typer.Option(help="loop time budget in seconds: no round starts that the "
                                                        "last round's duration says would end later")] = None,
) -> None:
    """Rounds of: champion runs training missions -> judge + RULER -> train -> eval -> promote -> hot-load."""
    from config.errors import ConfigError
    from config.settings import load_config
    from learning.errors import LearningError
    from learning.loop import LoopSettings
    from trainer.errors import TrainerError

    try:
        art = load_config(config)
        if teacher not in (None, "self", "fleet"):
            raise LearningError(f"--teacher must be self or fleet, not {teacher!r}")
        settings = LoopSettings.from_config(art, rounds=rounds, groups=groups, objective=objective, teacher=teacher,
                                            temperature=temperature, top_p=top_p, explore=explore,
                                            eval_per_family=per_family, seed=seed,
                                            budget_s=budget_s)
        result = asyncio.run(run_loop(art, config, base_url, settings))
    except (LearningError, ConfigError, TrainerError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(f"loop {result.loop_id}: objective {result.objective}, teacher {result.teacher}, "
               f"{result.seconds:.0f} s; champion {result.champion}")
    for line in result.table():
        typer.echo(line)


async def run_loop(art: Any, config: Path | None, base_url: str | None, settings: Any,
                   say: Any = _say) -> Any:
    """Open the session and run the loop on the current champion (also the loop benchmark's entry point)."""
    from agents.tracking import Tracker
    from learning.loop import Loop
    from learning.session import open_session

    with open_session(art, config, base_url, say) as session:
        champion = session.resolve("champion")
        async with Tracker.from_config(art) as tracker, client_for(art, session.base_url, champion) as llm:
            loop = Loop(art, settings, llm, tracker, session.client, session.base_url, session.base_dir,
                        session.lineage, art.storage.data_dir / "loop", flush=tracker.flush, say=say)
            return await loop.run(champion)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("loop")(loop_command)
