"""Tools an agent can use, registered by name; importing this package registers the built-ins."""

from agents.tools import calculator, files, http_get, lookup
from agents.tools.base import (
    REGISTRY,
    FunctionTool,
    Tool,
    Toolbox,
    ToolConfig,
    ToolConfigError,
    ToolError,
    build_toolbox,
    register_tool,
    validate_tool_config,
)

__all__ = [
    "REGISTRY",
    "FunctionTool",
    "Tool",
    "ToolConfig",
    "ToolConfigError",
    "ToolError",
    "Toolbox",
    "build_toolbox",
    "calculator",
    "files",
    "http_get",
    "lookup",
    "register_tool",
    "validate_tool_config",
]
