"""Tool registry: a tool is a name, a pydantic config model and a factory.

Missions name tools with a config; ``build_toolbox`` validates each config against the tool's model
(so a mistake names the field) and builds the instances. At run time every failure a tool meets is a
``ToolError`` whose text goes back to the agent as the step's error: tools never crash the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.recording import AgentError


class ToolError(AgentError):
    """A tool refused or failed; the message is shown to the agent."""


class ToolConfigError(AgentError):
    """A tool's config in a mission is invalid; ``loc`` is the path of the bad field."""

    def __init__(self, loc: str, msg: str) -> None:
        self.loc, self.msg = loc, msg
        super().__init__(f"{loc}: {msg}")


class ToolConfig(BaseModel):
    """Base of every tool's config: unknown keys are mistakes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Tool(Protocol):
    name: str
    description: str

    async def __call__(self, tool_input: str) -> str:
        """Run on the agent's input text; raise ``ToolError`` to report a failure."""
        ...


ToolFactory = Callable[[Any, Path], Tool]
"""(validated config, base directory for relative paths) -> tool."""


@dataclass(frozen=True)
class ToolKind:
    name: str
    description: str
    config_model: type[ToolConfig]
    factory: ToolFactory
    usage: str = "<input>"
    """The input's form as a placeholder (``<file path>``), shown to models that need it (compact style)."""


REGISTRY: dict[str, ToolKind] = {}


def register_tool(name: str, description: str, config_model: type[ToolConfig],
                  usage: str = "<input>") -> Callable[[ToolFactory], ToolFactory]:
    """Decorator: make ``factory`` available to missions under ``name``."""

    def deco(factory: ToolFactory) -> ToolFactory:
        REGISTRY[name] = ToolKind(name, description, config_model, factory, usage)
        return factory

    return deco


def validate_tool_config(name: str, config: Mapping[str, Any], loc: str = "") -> ToolConfig:
    """The tool's config model for ``config``; raises ``ToolConfigError`` naming the field."""
    kind = REGISTRY.get(name)
    if kind is None:
        raise ToolConfigError(f"{loc}name" if loc else "name",
                              f"unknown tool {name!r}; known tools: {', '.join(sorted(REGISTRY))}")
    try:
        return kind.config_model.model_validate(dict(config))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ToolConfigError(f"{loc}config.{field}" if field else f"{loc}config", first["msg"]) from None


class Toolbox:
    """The tools of one mission, by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return list(self._tools)

    def describe(self) -> str:
        """One line per tool, for the prompts."""
        return "\n".join(f"- {t.name}: {t.description}" for t in self._tools.values()) or "(no tools)"

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def call(self, name: str, tool_input: str) -> str:
        """Run a tool; every failure comes back as ``ToolError``."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available tools: {', '.join(self._tools) or 'none'}")
        try:
            return await tool(tool_input)
        except ToolError:
            raise
        except Exception as exc:  # a tool bug must not end the run: the agent sees it as an error
            raise ToolError(f"{name} failed: {exc.__class__.__name__}: {exc}") from exc


class ToolSpecLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...


def build_toolbox(specs: Iterable[ToolSpecLike], base_dir: Path) -> Toolbox:
    """Instantiate the mission's tools; relative paths in configs are taken from ``base_dir``."""
    tools: list[Tool] = []
    for i, spec in enumerate(specs):
        config = validate_tool_config(spec.name, spec.config, f"tools.{i}.")
        tools.append(REGISTRY[spec.name].factory(config, base_dir))
    return Toolbox(tools)


ToolFn = Callable[[str], Awaitable[str]]


@dataclass
class FunctionTool:
    """A tool made from an async function: what the built-in factories return."""

    name: str
    description: str
    fn: ToolFn

    async def __call__(self, tool_input: str) -> str:
        return await self.fn(tool_input)


def function_tool(name: str, fn: ToolFn) -> FunctionTool:
    """Wrap ``fn`` as the registered tool ``name`` (its description comes from the registry)."""
    return FunctionTool(name, REGISTRY[name].description, fn)
