"""`art train`, `art specialize TYPE`, `art models ...` and `art trainer`, added by ``register(app)``.

The training flags are generated from ``TrainingConfig``'s field metadata, so a new config field is
a new flag with its help text. Heavy imports (torch, transformers, peft) happen inside commands.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import ConfigOpt
from trainer.config import TrainingConfig
from trainer.errors import TrainerError
from trainer.specializations import KEYWORDS, SPECIALIZATIONS

_KW = inspect.Parameter.KEYWORD_ONLY


def _config_parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(TrainingConfig)
    params = []
    for f in dataclasses.fields(TrainingConfig):
        flag = "--" + f.name.replace("_", "-")
        decl = [f"{flag}/--no-{flag[2:]}"] if hints[f.name] is bool else [flag]
        # None: not given, so [art.training] (or the field's default) decides
        params.append(inspect.Parameter(f.name, _KW, annotation=hints[f.name] | None,
                                        default=typer.Option(None, *decl, rich_help_panel="Training",
                                                             help=f"{f.metadata['help']} (default: \\[art.training] "
                                                                  f"{f.name}, else {f.default!r})")))
    return params


def _window_parameters() -> list[inspect.Parameter]:
    def opt(name: str, annotation: Any, default: Any, help_: str, *decl: str) -> inspect.Parameter:
        return inspect.Parameter(name, _KW, annotation=annotation,
                                 default=typer.Option(default, *decl, help=help_, rich_help_panel="Window"))

    return [
        opt("config", Path | None, None, "art.toml (default: $ART_CONFIG or ./art.toml)", "--config", "-c"),
        opt("since", datetime | None, None, "trajectories completed at or after (UTC)", "--since"),
        opt("until", datetime | None, None, "trajectories completed before (UTC; default now)", "--until"),
        opt("min_reward", float | None, None, "minimum reward total (default: reward_threshold for sft, none "
            "for dpo/awr, which need the bad runs too)", "--min-reward"),
        opt("reward_version", str | None, None, "reward version (default: art.judge.reward_version)",
            "--reward-version"),
        opt("agent", str | None, None, "only this agent_name", "--agent"),
        opt("keyword", list[str] | None, None, "objective must contain one of these (repeatable)", "--keyword"),
        opt("name", str | None, None, "registry name of the model", "--name"),
        opt("resume", str | None, None, "continue the killed run RUN_ID from its last checkpoint", "--resume"),
        opt("progress", bool, True, "show a progress bar", "--progress/--no-progress"),
    ]


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _train(specialization: str | None, **kwargs: Any) -> None:
    from config.settings import load_config
    from trainer.runs import resume_training, run_training
    from trainer.windows import WindowFilter

    art = load_config(kwargs["config"])
    given = {f.name: kwargs[f.name] for f in dataclasses.fields(TrainingConfig) if kwargs[f.name] is not None}
    cfg = TrainingConfig.from_settings(art.training, given)
    if kwargs["resume"]:
        outcome = resume_training(art, kwargs["resume"], progress=kwargs["progress"])
    else:
        min_reward = kwargs["min_reward"]
        if min_reward is None and cfg.objective == "sft":
            min_reward = art.reward_threshold
        flt = WindowFilter(reward_version=kwargs["reward_version"] or art.judge.reward_version,
                           since=_utc(kwargs["since"]), until=_utc(kwargs["until"]), min_reward=min_reward,
                           agent=kwargs["agent"], specialization=specialization, keywords=kwargs["keyword"] or [],
                           top_k_per_group=cfg.rollouts_per_group)
        outcome = run_training(art, cfg, flt, specialization=specialization, name=kwargs["name"],
                               progress=kwargs["progress"])
    m = outcome.model
    typer.echo(f"run {outcome.run_id}: window {outcome.window_id}, {outcome.result.steps} steps"
               f"{' (stopped early)' if outcome.result.stopped_early else ''}")
    typer.echo(f"model {m.model_id} at {m.path}; `art eval {m.model_id}` measures its task success and promotes it "
               "when it beats the champion's")
    typer.echo(json.dumps({k: round(v, 4) for k, v in m.metrics.items()}))


def _command(fn: Callable[..., None], leading: list[inspect.Parameter]) -> Callable[..., None]:
    """``fn`` with a signature typer can read: ``leading`` + window options + TrainingConfig options."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> None:
        fn(**kwargs)  # TrainerError and ConfigError end at the `art` error boundary (one line, exit 2)

    params = [*leading, *_window_parameters(), *_config_parameters()]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _specialize(kind: str, **kwargs: Any) -> None:
    if kind not in SPECIALIZATIONS:
        raise TrainerError(f"unknown specialization {kind!r}: use one of {', '.join(SPECIALIZATIONS)}")
    _train(kind, **kwargs)


SPECIALIZE_HELP = "Train a specialised model on runs whose objective matches the type's keywords:\n\n" + "\n\n".join(
    f"{k}: {', '.join(v)}" for k, v in KEYWORDS.items())


def _models_app() -> typer.Typer:
    models = typer.Typer(help="The model registry: list, show, promote.", no_args_is_help=True)
    config_opt = typer.Option(None, "--config", "-c", help="art.toml (default: ./art.toml or $ART_CONFIG)")

    def client(config: Path | None) -> Any:
        from config.settings import load_config
        from trainer.runs import open_store

        return open_store(load_config(config))

    @models.command("list")
    def list_(specialization: str | None = typer.Option(None, help="only this specialisation"),
              config: Path | None = config_opt) -> None:
        """One line per model; * marks champions."""
        from trainer.registry import list_models

        def num(m: Any, key: str, fmt: str) -> str:
            return "-" if key not in m.metrics else format(m.metrics[key], fmt)

        for m in list_models(client(config), specialization):
            typer.echo(f"{'*' if m.is_champion else ' '} {m.model_id}  {m.specialization:<10} {m.objective:<4} "
                       f"success={num(m, 'eval_success', '.3f')} eval_loss={num(m, 'eval_loss', '.4f')}  {m.name}")

    @models.command("show")
    def show(model_id: str, config: Path | None = config_opt) -> None:
        """The evaluation summary (when evaluated), then the registry row as JSON."""
        from trainer.registry import evaluation_summary, get_model

        record = get_model(client(config), model_id)
        for line in evaluation_summary(record):
            typer.echo(line)
        typer.echo(record.model_dump_json(indent=1))

    @models.command("promote")
    def promote(model_id: str, config: Path | None = config_opt) -> None:
        """Make MODEL_ID the champion of its specialisation."""
        from trainer.registry import promote as do_promote

        m = do_promote(client(config), model_id)
        typer.echo(f"{m.model_id} is now the {m.specialization} champion")

    @models.command("base")
    def base(config: Path | None = config_opt) -> None:
        """Convert the installed SmolLM2-135M-Instruct GGUF into <data_dir>/models/ once and register it as
        a base model (the general champion when there is none). Idempotent; nothing is downloaded."""
        from config.settings import load_config
        from trainer.basemodel import install_base

        art = load_config(config)
        record, promoted = install_base(client(config), art.storage.resolved_models_dir(),
                                        say=lambda m: typer.echo(m, err=True))
        typer.echo(f"{record.model_id} at {record.path}" + (" -> general champion" if promoted else ""))

    @models.command("tiny")
    def tiny(path: Path, bench_size: bool = typer.Option(False, help="≈20M parameters instead of ≈0.5M")) -> None:
        """Build a tiny causal LM + tokenizer at PATH (no download needed) to train on."""
        from trainer.tinymodel import BENCH_SPEC, TinySpec, build_tiny_model

        typer.echo(str(build_tiny_model(path, BENCH_SPEC if bench_size else TinySpec())))

    return models


def _trainer_command(
    config: ConfigOpt = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap (default: art.kafka.bootstrap)")] = None,
    group_id: Annotated[str, typer.Option(help="consumer group")] = "art-trainer",
) -> None:
    """Count qualifying rewards from Kafka and start a training run when enough have arrived."""
    import asyncio

    from config.settings import load_config
    from trainer.consumer import run_trainer_consumer

    art = load_config(config)
    asyncio.run(run_trainer_consumer(art, bootstrap=bootstrap or art.kafka.bootstrap, group_id=group_id,
                                     config_path=config))


def register(app: typer.Typer) -> None:
    """Add the trainer's commands to the `art` app."""
    app.command("train", help="Fine-tune a LoRA adapter on a reward-filtered window.")(_command(
        functools.partial(_train, None), []))
    kind = inspect.Parameter("kind", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                             default=typer.Argument(..., help=" | ".join(SPECIALIZATIONS)))
    app.command("specialize", help=SPECIALIZE_HELP)(_command(_specialize, [kind]))
    app.add_typer(_models_app(), name="models")
    app.command("trainer")(_trainer_command)
