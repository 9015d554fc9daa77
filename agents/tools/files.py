"""file_read / file_write, confined to a base folder.

An agent's input is untrusted text, so every path is checked three ways before any file is opened:
``..`` components are refused outright, absolute paths must lie inside the base, and the fully
resolved path (symlinks followed) must still lie inside the base.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

from pydantic import Field

from agents.tools.base import FunctionTool, ToolConfig, ToolError, function_tool, register_tool
from schemas.criteria import write_target

EXPECTED_INPUT = '{"path": "<file path>", "content": "<text>"}'


class FileReadConfig(ToolConfig):
    base_path: Path = Field(Path("."), description="folder the tool may read; relative to the mission file")
    max_bytes: int = Field(65536, ge=1, le=10_000_000)


class FileWriteConfig(ToolConfig):
    base_path: Path = Field(Path("."), description="folder the tool may write; relative to the mission file")
    max_bytes: int = Field(1_000_000, ge=1, le=100_000_000)
    create_dirs: bool = True


class Sandbox:
    """Maps agent-given paths to real paths under ``root`` or refuses them."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, raw: str) -> Path:
        text = raw.strip()
        if not text:
            raise ToolError("no path given")
        if "\x00" in text:
            raise ToolError("path refused: contains a NUL byte")
        given = PurePath(text)
        if ".." in given.parts:
            raise ToolError(f"path traversal refused: {text!r} contains '..'; paths must stay inside the sandbox")
        candidate = Path(given) if given.is_absolute() else self.root / given
        if given.is_absolute() and not _inside(Path(os.path.normpath(candidate)), self.root):
            raise ToolError(f"absolute path refused: {text!r} is outside the sandbox {self.root}")
        real = candidate.resolve()
        if not _inside(real, self.root):
            raise ToolError(f"symlink refused: {text!r} resolves to {real}, outside the sandbox {self.root}")
        return real


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _read_path_input(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError:
            return stripped
        if isinstance(doc, dict) and isinstance(doc.get("path"), str):
            return doc["path"]
    return stripped


@register_tool("file_read", "read a text file: input is a path relative to the sandbox folder", FileReadConfig,
               usage="<file path>")
def file_read(config: FileReadConfig, base_dir: Path) -> FunctionTool:
    sandbox = Sandbox(base_dir / config.base_path)

    async def run(tool_input: str) -> str:
        path = sandbox.resolve(_read_path_input(tool_input))
        if not path.is_file():
            raise ToolError(f"no such file: {path.relative_to(sandbox.root)}")
        with path.open("rb") as fh:
            data = fh.read(config.max_bytes + 1)
        text = data[: config.max_bytes].decode("utf-8", errors="replace")
        return text + (f"\n[truncated at {config.max_bytes} bytes]" if len(data) > config.max_bytes else "")

    return function_tool("file_read", run)


@register_tool("file_write", 'write a text file: input is {"path": ..., "content": ...} or the path on the first '
               "line and the content after it", FileWriteConfig,
               usage=EXPECTED_INPUT)
def file_write(config: FileWriteConfig, base_dir: Path) -> FunctionTool:
    sandbox = Sandbox(base_dir / config.base_path)

    async def run(tool_input: str) -> str:
        try:
            raw_path, content = write_target(tool_input)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        if not content and not tool_input.strip().startswith("{"):
            # A lone line is a path with nothing to write: a mistake (SmolLM2 wrote `file_write: 3076 * 4`
            # for the product it meant to save), and "wrote 0 bytes" would tell it the task was done.
            raise ToolError(f"nothing to write to {raw_path.strip()!r}: give {EXPECTED_INPUT} or the path on "
                            "the first line and the content after it")
        path = sandbox.resolve(raw_path)
        data = content.encode()
        if len(data) > config.max_bytes:
            raise ToolError(f"content too large: {len(data)} bytes, limit {config.max_bytes}")
        if path == sandbox.root or path.is_dir():
            raise ToolError(f"{raw_path!r} is a folder, not a file")
        if config.create_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise ToolError(f"folder does not exist: {path.parent.relative_to(sandbox.root)}")
        path.write_bytes(data)
        return f"wrote {len(data)} bytes to {path.relative_to(sandbox.root)}"

    return function_tool("file_write", run)

