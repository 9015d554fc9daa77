"""`art run MISSION.yaml`: run a mission with the configured LLM, tracked into the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agents.llm import OpenAIChatClient
from agents.missions import Mission, load_mission, mission_format
from agents.patterns import ScoredPattern, find_similar_patterns, refresh_patterns
from agents.recording import AgentError
from agents.runner import RunResult, run_rollouts
from cli.options import ConfigOpt
from cli.output import err, fail, out, warn
from cli.stores import store_reader
from config.settings import ArtConfig, load_config
from store.clickhouse import error_text, reader, writer


def _patterns(cfg: ArtConfig, mission: Mission) -> list[ScoredPattern]:
    """Similar success patterns from the store; a store that cannot be opened only costs the hints."""
    try:
        with reader(cfg) as client:
            return find_similar_patterns(client, mission.objective, k=mission.agent_config.pattern_limit)
    except Exception as exc:  # no store or patterns table yet, store locked by another process, server down
        warn(f"success patterns unavailable: {error_text(exc)}")
        return []


def _summary(results: list[RunResult]) -> Table:
    table = Table(title="mission runs")
    for col in ("session", "status", "steps", "errors", "reflections", "tokens", "tools", "time", "answer"):
        table.add_column(col)
    for r in results:
        colour = {"succeeded": "green", "failed": "yellow"}.get(r.status.value, "red")
        answer = (r.final_answer or "")[:60]
        table.add_row(r.session_id, f"[{colour}]{r.status.value}[/{colour}]", str(r.steps), str(r.errors),
                      str(r.reflections), str(r.total_tokens), ", ".join(r.tools_used), f"{r.duration_ms / 1000:.1f}s",
                      escape(answer))
    return table


async def _run(cfg: ArtConfig, mission: Mission, rollouts: int | None, group_id: str | None,
               patterns: list[ScoredPattern]) -> list[RunResult]:
    from agents.tracking import Tracker  # the SDK pulls in Kafka; load it only when a run starts

    tools = mission.toolbox()
    try:
        tracker = Tracker.from_config(cfg)
    except Exception as exc:  # no broker configured, no running stack, bad registry URL
        raise AgentError(f"cannot start tracking: {exc}") from exc
    async with OpenAIChatClient.from_config(cfg, mission.agent_config.model) as llm, tracker:
        return await run_rollouts(mission, llm, tracker, tools, patterns, rollouts=rollouts, group_id=group_id)


def run_command(
    mission_path: Annotated[Path, typer.Argument(metavar="MISSION.yaml", help="mission file to run")],
    config: ConfigOpt = None,
    rollouts: Annotated[int | None, typer.Option("--rollouts", "-n", min=1,
                                                 help="sessions to run in one group (default: the mission's)")] = None,
    group_id: Annotated[str | None, typer.Option("--group-id", help="group the rollouts are scored in")] = None,
    use_patterns: Annotated[bool, typer.Option("--patterns/--no-patterns",
                                               help="show success patterns of similar earlier runs")] = True,
) -> None:
    """Run an agent on a mission: ReAct steps with tools, every step tracked as events."""
    cfg = load_config(config)
    mission = load_mission(mission_path)
    if not cfg.models.llm_base_url:
        raise fail("no LLM endpoint configured: set llm_base_url under [art.models] in art.toml "
                    "(or ART_MODELS_LLM_BASE_URL), e.g. http://127.0.0.1:8000/v1", 2)
    if not (mission.agent_config.model or cfg.models.llm_model):
        raise fail("no model named: set agent_config.model in the mission or llm_model under [art.models]", 2)
    patterns = _patterns(cfg, mission) if use_patterns else []
    if patterns:
        err.print(f"using {len(patterns)} success patterns from similar earlier runs")
    try:
        results = asyncio.run(_run(cfg, mission, rollouts, group_id, patterns))
    except AgentError as exc:  # the run started and failed: its reason, exit 1
        raise fail(str(exc)) from None
    out.print(_summary(results))
    for r in results:
        if r.reason:
            err.print(f"{r.session_id} {r.status.value}: {escape(r.reason)}", soft_wrap=True)
    ok = sum(r.status.value == "succeeded" for r in results)
    group = results[0].group_id if results else None
    out.print(f"{ok} of {len(results)} runs succeeded" + (f" (group {group})" if group else ""))
    if any(r.status.value == "error" for r in results):
        raise typer.Exit(code=2)


patterns_app = typer.Typer(help="Success patterns from high-reward runs (used in agents' prompts).",
                           no_args_is_help=True)


@patterns_app.command("refresh")
def patterns_refresh(config: ConfigOpt = None,
                     min_reward: Annotated[float, typer.Option(help="reward a run needs to become a pattern")] = 0.7,
                     reward_version: Annotated[str, typer.Option(help="only rewards of this version")] = "") -> None:
    """Extract patterns from high-reward trajectories into the success_patterns table."""
    cfg = load_config(config)
    client = writer(cfg)
    try:
        stored = refresh_patterns(client, min_reward=min_reward, reward_version=reward_version)
    except Exception as exc:  # a statement ClickHouse refused: its words, no traceback
        raise fail(error_text(exc)) from None
    out.print(f"{stored} patterns stored")


@patterns_app.command("find")
def patterns_find(objective: Annotated[str, typer.Argument(help="the objective to find similar runs for")],
                  config: ConfigOpt = None,
                  k: Annotated[int, typer.Option(help="how many")] = 3) -> None:
    """The stored patterns most similar to an objective."""
    with store_reader(load_config(config)) as client:
        found = find_similar_patterns(client, objective, k=k)
    if not found:
        err.print(f"no stored pattern is similar to {objective!r} (`art patterns refresh` stores them from "
                  "high-reward runs)", soft_wrap=True)
        return
    table = Table("similarity", "reward", "objective", "actions")
    for scored in found:
        p = scored.pattern
        table.add_row(f"{scored.similarity:.3f}", f"{p.reward:.3f}", p.objective[:60], "; ".join(p.actions)[:80])
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add `run` and `patterns` to the `art` command."""
    app.command("run", help="Run an agent on a mission file (ReAct loop, tools, tracked steps).",
                epilog=escape(mission_format()))(run_command)
    app.add_typer(patterns_app, name="patterns")
