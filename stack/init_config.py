"""`art init`: a commented art.toml with every section, an example mission, and the data folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.missions import EXAMPLE_MISSION
from cli.output import err, fail

TEMPLATE = """# ART Stream configuration. Environment variables override any key:
# ART_<SECTION>_<KEY> for a section (ART_KAFKA_BOOTSTRAP), ART_<KEY> for [art] (ART_REWARD_THRESHOLD).
[art]
tracking_enabled = true
training_interval_s = 3600.0          # start a training run at least this often (trainer consumer)
min_trajectories_for_training = 100   # ... or as soon as this many new qualifying trajectories exist
reward_threshold = 0.7                # a trajectory qualifies for training at this reward
success_threshold = 0.8

[art.models]
base_model = ""                       # local HF model directory adapters are trained on
llm_base_url = ""                     # OpenAI-compatible endpoint for agents and LLM judges
llm_model = ""
llm_api_key = ""                      # prefer ART_MODELS_LLM_API_KEY

[art.storage]
data_dir = "{data_dir}"

[art.kafka]
bootstrap = ""                        # empty: the embedded broker of `art up`
topic_prefix = "art."
session_partitions = 6
schema_registry_url = ""              # empty: the local registry

[art.clickhouse]
dsn = ""                              # empty: chDB in <data_dir>/clickhouse; or http://host:8123
database = "art"
reader_timeout_s = 30.0               # longest a reader query (art sql, stats, report) may run

[art.stream]
session_idle_timeout_s = 300.0
gap_timeout_s = 30.0

[art.judge]
name = "heuristic"                    # or "llm"
version = "1"
weights = [0.4, 0.2, 0.2, 0.1, 0.1]
rollouts_per_group = 4
group_window_s = 60.0
reward_version = "ruler-heuristic@1"

[art.capture]                         # `art proxy`, `art otlp`; `art up --proxy-upstream URL --otlp`
proxy_upstream = ""                   # OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
proxy_port = 0                        # 0: any free port (published in <data_dir>/run/stack.json)
otlp_enabled = false
otlp_port = 0
host = "127.0.0.1"
session_idle_timeout_s = 300.0        # a proxy session with no call for this long is completed
trace_settle_s = 2.0                  # a trace is mapped this long after its root span arrived
trace_idle_timeout_s = 60.0           # ... or this long after its last span when no root comes
max_body_bytes = 8388608              # OTLP payloads above this are refused and dead-lettered
max_proxy_body_bytes = 67108864
max_open_spans = 200000               # above this the receiver answers 503 (exporters retry)
# [art.capture.prices]                # per million tokens: model = [input, output]
# "gpt-4o-mini" = [0.15, 0.60]
"""


def init(path: Annotated[Path, typer.Argument(help="where to write the config")] = Path("art.toml"),
         data_dir: Annotated[Path, typer.Option(help="data folder for the store, spools and models")] = Path(
             "art-data"),
         force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False) -> None:
    """Write art.toml with every section, an example mission.yaml beside it (kept if one exists) and the
    data folders."""
    if path.exists() and not force:
        raise fail(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(data_dir=data_dir.as_posix()))
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
