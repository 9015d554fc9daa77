"""Configuration: ``art.toml`` sections as pydantic models, environment variables on top.

Every process (agents, worker, sink, trainer, CLI) reads the same file, so this is a shared
contract. ``ART_<SECTION>_<KEY>`` overrides ``[art.<section>] key`` and ``ART_<KEY>`` overrides
``[art] key`` (e.g. ``ART_KAFKA_BOOTSTRAP``, ``ART_CLICKHOUSE_DSN``, ``ART_TRAINING_INTERVAL_S``);
``ART_TRAINING_<KEY>`` sets a key of the ``[art.training]`` table (``ART_TRAINING_LEARNING_RATE``).
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.errors import ConfigError
from schemas.topics import Topics


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsConfig(Section):
    base_model: str = Field("", description="local HF model directory that adapters are trained on")
    llm_base_url: str = Field("", description="OpenAI-compatible endpoint for agents and LLM judges")
    llm_model: str = Field("", description="model name sent to the endpoint")
    llm_api_key: str = Field("", description="API key for the endpoint (prefer ART_MODELS_LLM_API_KEY)")
    llm_timeout_s: float = Field(60.0, gt=0, description="seconds one LLM call may take")


class StorageConfig(Section):
    data_dir: Path = Field(Path("art-data"), description="root for the store, spools, runs")
    models_dir: Path | None = Field(None, description="model registry folder (default <data_dir>/models)")
    checkpoints_dir: Path | None = Field(None, description="default <data_dir>/checkpoints")

    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    def resolved_checkpoints_dir(self) -> Path:
        return self.checkpoints_dir or self.data_dir / "checkpoints"


class KafkaConfig(Section):
    bootstrap: str = Field("", description="host:port list; empty means the embedded broker of `art up`")
    topic_prefix: str = Field("art.", pattern=r"^[A-Za-z0-9._-]*$", description="every topic's name starts so")
    session_partitions: int = Field(6, ge=1, le=256, description="bounds stream worker parallelism")
    schema_registry_url: str = Field("", description="Confluent-compatible registry; empty = local")

    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, session_partitions=self.session_partitions)


class ClickHouseConfig(Section):
    dsn: str = Field("", description="chdb:///dir or http(s)://host:8123; empty = chdb in data_dir")
    database: str = Field("art", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="database of every table")
    reader_timeout_s: float = Field(30.0, gt=0, description="longest a reader query (art sql, stats, report) "
                                                            "may run on the chDB store")


class StreamConfig(Section):
    session_idle_timeout_s: float = Field(300.0, gt=0, description="close silent sessions after this")
    gap_timeout_s: float = Field(30.0, gt=0, description="give up waiting for a missing seq after this")
    sweep_interval_s: float = Field(1.0, gt=0, description="how often timeouts are checked")
    fetch_max_wait_ms: int = Field(100, ge=1, le=10_000, description="longest a worker's fetch waits for "
                                   "records (the embedded broker holds a fetch up to about half of it even when "
                                   "records arrive)")
    web_port: int = Field(0, ge=0, le=65535, description="first worker web port; 0 = any free port")
    fold_batch: int = Field(5000, ge=1, description="session events folded per batch (one state write each)")
    fold_wait_s: float = Field(0.25, gt=0, description="longest a fold batch waits to fill")
    judge_batch: int = Field(500, ge=1, description="trajectories judged per batch")
    judge_wait_s: float = Field(0.05, gt=0, description="longest a judging batch waits to fill")
    judge_concurrency: int = Field(8, ge=1, description="judge calls in flight per worker (LLM judge)")
    repair_after_s: float = Field(2.0, gt=0, description="a gap this old is filled from the ClickHouse mirror")
    full_scan_interval_s: float = Field(30.0, gt=0, description="how often every stored session is checked "
                                                                "for timeouts, not only the open ones")


class SinkConfig(Section):
    batch_records: int = Field(20000, ge=1, description="records per sink batch (one insert per table)")
    poll_ms: int = Field(100, ge=1, description="longest a sink poll waits for records")


class JudgeConfig(Section):
    name: str = Field("heuristic", description="heuristic or llm")
    version: str = Field("1", description="stamped on every judgment; a new one re-scores beside the old")
    weights: list[float] = Field([0.4, 0.2, 0.2, 0.1, 0.1], min_length=5, max_length=5,
                                 description="completion, quality, efficiency, tool usage, coherence")
    rollouts_per_group: int = Field(4, ge=1, description="a RULER group is scored when this many arrived")
    group_window_s: float = Field(60.0, gt=0, description="... or this long after its first member")
    reward_version: str = Field("ruler-heuristic@1", description="ruler-heuristic@N or ruler-llm@N")


class LearningConfig(Section):
    """`art loop` / `art eval`: how agents learn from their own runs and when a model is promoted."""

    promotion_margin: float = Field(0.05, ge=0, le=1, description="held-out task success a new model must beat "
                                    "the champion's by to replace it")
    rounds: int = Field(3, ge=1, le=100, description="rounds of `art loop`: run, judge, train, evaluate, promote")
    groups: int = Field(24, ge=1, description="training missions per round, each run as one group of "
                        "judge.rollouts_per_group sampled runs (RULER compares them)")
    temperature: float = Field(0.3, ge=0, le=2, description="sampling temperature of the training runs")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling of the training runs: draw only from the "
                         "likeliest tokens holding this much probability (1: every token)")
    explore: float = Field(0.5, ge=0, le=1, description="chance per step of a training run that the reply is made "
                           "to start with a tool the run has not called yet (the model writes the rest); "
                           "evaluation never explores")
    eval_per_family: int = Field(12, ge=1, description="held-out missions per family")
    concurrency: int = Field(16, ge=1, description="runs in flight at once (the server batches them)")
    max_tokens: int = Field(32, ge=1, description="completion limit per step (one action line)")
    objective: str = Field("sft", description="sft | awr | dpo")
    teacher: str = Field("self", description="self: only the improved model's lineage; fleet: other agents too")
    wait_s: float = Field(300.0, gt=0, description="longest wait for the pipeline to judge a round's runs")
    request_timeout_s: float = Field(900.0, gt=0, description="per LLM call: a CPU server under a full batch "
                                     "answers slowly, and a timed-out call ends its run")


class CaptureConfig(Section):
    """Zero-change capture: the recording proxy and the OTLP/HTTP receiver (agents/capture)."""

    proxy_upstream: str = Field("", description="OpenAI-compatible base URL the proxy forwards to; empty = no proxy")
    proxy_port: int = Field(0, ge=0, le=65535, description="proxy port under `art up`; 0 = any free port")
    otlp_enabled: bool = Field(False, description="run the OTLP/HTTP receiver under `art up`")
    otlp_port: int = Field(0, ge=0, le=65535, description="receiver port under `art up`; 0 = any free port")
    host: str = Field("127.0.0.1", description="interface both listen on (0.0.0.0 in containers)")
    session_idle_timeout_s: float = Field(300.0, gt=0, description="complete a silent proxy session after this")
    trace_settle_s: float = Field(2.0, ge=0, description="wait this long after a trace's root span for late spans")
    trace_idle_timeout_s: float = Field(60.0, gt=0, description="map a trace without a root span after this")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger OTLP payloads are refused (413)")
    max_proxy_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="larger proxy requests are refused")
    max_open_spans: int = Field(200_000, ge=1, description="buffered spans before the receiver answers 503")
    prices: dict[str, Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]],
                                Field(min_length=2, max_length=2)]] = Field(
        default_factory=dict, description="model -> [input, output] price per million tokens, for step cost")


class UiConfig(Section):
    """`art ui`, the read-only web app; `art up` serves it too unless disabled."""

    enabled: bool = Field(True, description="serve the UI under `art up`")
    port: int = Field(0, ge=0, le=65535, description="its port on 127.0.0.1; 0 = any free port under `art up`, "
                                                     "8765 for `art ui`")


class ArtConfig(Section):
    tracking_enabled: bool = Field(True, description="agents record their steps")
    training_interval_s: float = Field(3600.0, gt=0, description="start a training run at least this often "
                                                                 "(trainer consumer)")
    min_trajectories_for_training: int = Field(100, ge=1, description="... or as soon as this many new "
                                                                      "qualifying trajectories exist")
    reward_threshold: float = Field(0.7, ge=0, le=1, description="a trajectory qualifies for training at this "
                                                                 "reward")
    success_threshold: float = Field(0.8, ge=0, le=1, description="a run counts as a success at this reward "
                                                                  "(no component reads it yet)")
    training: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="run settings of `art train` and of the trainer consumer's runs: "
        "TrainingConfig's fields (objective, learning_rate, max_steps, ...); a flag on the command line wins")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    clickhouse: ClickHouseConfig = Field(default_factory=ClickHouseConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    learning: LearningConfig = Field(default_factory=LearningConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    ui: UiConfig = Field(default_factory=UiConfig)

    def clickhouse_dsn(self) -> str:
        return self.clickhouse.dsn or f"chdb://{(self.storage.data_dir / 'clickhouse').resolve()}"


SECTIONS = {name for name, f in ArtConfig.model_fields.items()
            if isinstance(f.default_factory, type) and issubclass(f.default_factory, BaseModel)}
"""Sections with a model of their own (``[art.kafka]``, ...)."""
TABLES = {name for name, f in ArtConfig.model_fields.items() if f.default_factory is dict}
"""Free-form tables of ``[art]`` (``[art.training]``): their keys are checked by the component that reads them."""


def _field_annotation(section: str | None, key: str) -> Any:
    model: type[BaseModel] = ArtConfig
    if section is not None:
        model = ArtConfig.model_fields[section].default_factory  # type: ignore[assignment]
    field = model.model_fields.get(key)
    return field.annotation if field is not None else None


def _env_value(name: str, value: str, annotation: Any) -> Any:
    """A list from ``a,b,c`` (or JSON ``[...]``), a table from JSON ``{...}``; other values stay text
    for pydantic to convert."""
    container = typing.get_origin(annotation)
    if container not in (list, dict):
        return value
    text = value.strip()
    if text[:1] in "[{" and text:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid config: {name} = {value!r} is not valid JSON: {exc}") from None
    if container is dict:
        raise ConfigError(f'invalid config: {name} = {value!r}: expected a JSON object, e.g. {{"key": [1, 2]}}')
    return [item.strip() for item in text.split(",")] if text else []


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The overrides as a document, and for each overridden key the variable it came from."""
    out: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, value in environ.items():
        if not name.startswith("ART_") or name == "ART_CONFIG":
            continue
        rest = name[4:].lower()
        section = next((s for s in SECTIONS | TABLES if rest.startswith(s + "_")), None)
        if rest in ArtConfig.model_fields and rest not in TABLES:  # ART_TRAINING_INTERVAL_S: [art], not a table
            out[rest] = _env_value(name, value, _field_annotation(None, rest))
            origins[(rest,)] = name
        elif section is not None:
            key = rest[len(section) + 1:]
            annotation = _field_annotation(section, key) if section in SECTIONS else None
            out.setdefault(section, {})[key] = _env_value(name, value, annotation)
            origins[(section, key)] = name
    return out, origins


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> ArtConfig:
    """Read ``path`` (or $ART_CONFIG, or ./art.toml when present) and apply env overrides."""
    environ = dict(os.environ) if environ is None else environ
    path = path or (Path(environ["ART_CONFIG"]) if "ART_CONFIG" in environ else None)
    doc: dict[str, Any] = {}
    source = "defaults"
    if path is None and Path("art.toml").exists():
        path = Path("art.toml")
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text()).get("art", {})
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist (run `art init`)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        source = str(path)
    overrides, origins = _env_overrides(environ)
    doc = _merge(doc, overrides)
    try:
        return ArtConfig.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"])
        key = "art." + ".".join(loc)
        given = first.get("input")
        origin = next((f" (from {name})" for path, name in origins.items() if loc[:len(path)] == path), "")
        raise ConfigError(f"invalid config ({source}): {key} = {given!r}{origin}: {first['msg']}") from None
