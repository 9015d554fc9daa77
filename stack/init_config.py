"""`art init`: a commented art.toml with every section, an example mission, and the data folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from agents.missions import EXAMPLE_MISSION
from cli.output import err, fail
from config.settings import SECTIONS, ArtConfig

HEADER = """# ART Stream configuration. Environment variables override any key:
# ART_<SECTION>_<KEY> for a section (ART_KAFKA_BOOTSTRAP), ART_<KEY> for [art] (ART_REWARD_THRESHOLD);
# lists take commas (ART_JUDGE_WEIGHTS=0.1,0.1,0.1,0.1,0.6), tables JSON.
"""
NOTES = {"models.llm_api_key": "prefer ART_MODELS_LLM_API_KEY", "kafka.bootstrap": "empty: the embedded broker of "
         "`art up`", "clickhouse.dsn": "empty: chDB in <data_dir>/clickhouse; or http://host:8123",
         "capture.prices": 'per million tokens: "model" = [input, output]'}
EXAMPLES = {"capture.prices": '"gpt-4o-mini" = [0.15, 0.60]',
            "training": 'objective = "awr"  # and any other `art train --help` option, e.g. learning_rate = 0.0005'}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _lines(model: type[BaseModel], section: str, values: BaseModel) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if name in SECTIONS and model is ArtConfig:
            continue
        key = f"{section}.{name}".lstrip(".")
        note = NOTES.get(key, field.description or "")
        value = getattr(values, name)
        if isinstance(value, dict):  # a TOML table: shown commented, with an example
            out += [f"# [art.{key}]".ljust(38) + f"# {note}", f"# {EXAMPLES[key]}"]
            continue
        line = f"{name} = {_toml(value)}" if value is not None else f'# {name} = ""'
        out.append(line.ljust(37) + f" # {note}" if note else line)
    return out


def render_template(data_dir: Path) -> str:
    """art.toml with every key of ``config.settings`` at its default (``data_dir`` as given), each
    with its field's description: a new config field is in the template without anyone adding it."""
    defaults = ArtConfig(storage={"data_dir": data_dir})  # type: ignore[arg-type]
    parts = [HEADER, "[art]", *_lines(ArtConfig, "", defaults)]
    for name, field in ArtConfig.model_fields.items():
        if name in SECTIONS:
            section_model = field.default_factory
            parts += ["", f"[art.{name}]", *_lines(section_model, name, getattr(defaults, name))]  # type: ignore[arg-type]
    return "\n".join(parts) + "\n"


def init(path: Annotated[Path, typer.Argument(help="where to write the config")] = Path("art.toml"),
         data_dir: Annotated[Path, typer.Option(help="data folder for the store, spools and models")] = Path(
             "art-data"),
         force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False) -> None:
    """Write art.toml with every section, an example mission.yaml beside it (kept if one exists) and the
    data folders."""
    if path.exists() and not force:
        raise fail(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(data_dir))
    for sub in ("", "clickhouse", "models", "checkpoints", "spool", "logs"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    mission = path.parent / "mission.yaml"
    wrote_mission = not mission.exists()
    if wrote_mission:
        mission.write_text(EXAMPLE_MISSION)
    err.print(f"wrote {path}" + (f" and an example {mission} (`art run {mission}`)" if wrote_mission else "")
              + f"; data in {data_dir}/")


def register(app: typer.Typer) -> None:
    app.command()(init)
