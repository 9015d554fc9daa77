"""Mission files: what an agent should do, with which tools, and how success is judged.

A mission is YAML validated by pydantic; any mistake becomes one ``MissionError`` that names the file
and the field (``mission.yaml: agent_config.max_iterations: Input should be a valid integer``), and
tool configs are checked against each tool's own model at load time, not halfway through a run.

``EXAMPLE_MISSION`` is the example that `art init` writes, `art run --help` shows and the README quotes
(tests tie the three); ``mission_format()`` describes every field from the models below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.recording import AgentError
from agents.tools import ToolConfigError, build_toolbox, validate_tool_config
from agents.tools.base import Toolbox

EXAMPLE_MISSION = """\
# art run mission.yaml  (art run --help describes every field)
name: multiply
objective: What is 17 * 23? Use the calculator, then answer with the number.
agent_config: {max_iterations: 5, temperature: 0.2}   # model: empty = [art.models] llm_model
tools:
  - name: calculator
  - name: file_read
    config: {base_path: .}
success_criteria: ["391"]
group_id: multiply-v1
rollouts: 2
"""


class MissionError(AgentError):
    """A mission file is missing, not YAML, or breaks the mission model."""


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iterations: int = Field(10, ge=1, le=500, description="steps before the run stops as failed")
    model: str = Field("", description="model name for the endpoint; empty = [art.models] llm_model")
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: draw only from the most likely tokens "
                         "holding this much probability (1: all)")
    explore: float = Field(0.0, ge=0, le=1, description="compact style: chance per step that the reply is made to "
                           "start with a tool this run has not called yet (answer: once all have been), the model "
                           "writing the rest (the endpoint must speak vLLM's continue_final_message, as "
                           "`art serve` does); 0: the model alone decides (evaluation)")
    max_tokens: int | None = Field(None, ge=1, description="completion limit per LLM call")
    reflection_interval: int = Field(3, ge=1, description="reflect on the trajectory every N steps")
    pattern_limit: int = Field(3, ge=0, le=20, description="success patterns shown in the prompts")
    cost_per_1k_tokens: float = Field(0.0, ge=0, description="price used for each step's cost")
    prompt_style: Literal["react", "compact"] = Field(
        "react", description="react: think, decide (JSON) and reflect calls per step; compact: one call per step "
        "answering one action line (for small models)")
    token_traces: bool = Field(True, description="record each completion's token ids and logprobs in the step "
                                                 "(asked in vLLM's dialect; dropped if the endpoint refuses)")

    def as_strings(self) -> dict[str, str]:
        """The flat string map that ``SessionStarted.agent_config`` carries."""
        return {k: "" if v is None else str(v) for k, v in self.model_dump().items()}


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


class Mission(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="required; the agent's name in the store (letters, digits, . _ -)")
    objective: str = Field(min_length=1, description="required; the task, as the agent reads it")
    agent_config: AgentConfig = Field(default_factory=AgentConfig, description="how the agent runs (below)")
    tools: list[ToolSpec] = Field(default_factory=list, description="tools by name, each with an optional "
                                                                    "config mapping (below)")
    success_criteria: list[str] = Field(default_factory=list, description="texts the answer must contain "
                                        "('= text': equal it; 'file:<path> = <text>': a file_write must have "
                                        "written it); the judge scores completion by them")
    group_id: str | None = Field(None, description="rollouts of one group are rewarded against each other")
    rollouts: int = Field(1, ge=1, le=1000, description="sessions per `art run`")
    base_dir: Path = Field(Path("."), exclude=True, description="folder relative tool paths start from")

    def toolbox(self) -> Toolbox:
        """Build this mission's tools (configs were validated when the mission was loaded)."""
        return build_toolbox(self.tools, self.base_dir)


def mission_format() -> str:
    """The mission file format, field by field, from the models (for `art run --help`)."""
    from agents.tools import REGISTRY

    def fields(model: type[BaseModel], indent: str) -> list[str]:
        lines = []
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            shown = not (field.is_required() or field.default_factory or field.default is None)
            default = f" (default {field.default!r})" if shown else ""
            lines.append(f"{indent}{name}: {field.description or ''}{default}")
        return lines

    tools = [f"  {name}: {kind.description}" for name, kind in sorted(REGISTRY.items())]
    return "\n".join(["Mission file (YAML):", *fields(Mission, "  "), "agent_config:",
                      *fields(AgentConfig, "  "), "tools:", *tools, "Example (`art init` writes it as mission.yaml):",
                      *("  " + line for line in EXAMPLE_MISSION.splitlines())])


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_mission(text: str, source: str = "mission", base_dir: Path | None = None) -> Mission:
    """Validate mission YAML; ``source`` prefixes every error message."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MissionError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise MissionError(f"{source}: a mission is a mapping with name, objective, agent_config, tools, "
                           f"success_criteria; got {type(doc).__name__}")
    if base_dir is not None:
        doc = {**doc, "base_dir": base_dir}
    try:
        mission = Mission.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MissionError(f"{source}: {_location(first['loc'])}: {first['msg']}{more}") from None
    seen: set[str] = set()
    for i, spec in enumerate(mission.tools):
        if spec.name in seen:
            raise MissionError(f"{source}: tools.{i}.name: tool {spec.name!r} is listed twice")
        seen.add(spec.name)
        try:
            validate_tool_config(spec.name, spec.config, f"tools.{i}.")
        except ToolConfigError as exc:
            raise MissionError(f"{source}: {exc}") from None
    return mission


def load_mission(path: Path) -> Mission:
    """Read and validate a mission file; tool paths are relative to its folder."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissionError(f"{path}: mission file does not exist") from None
    except OSError as exc:
        raise MissionError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_mission(text, source=str(path), base_dir=path.resolve().parent)
