"""lookup: search a folder of local text files for the lines that best match a query.

A line scores by how many distinct query words it contains (case-insensitive), ties broken by file
and line number, so the answer is deterministic. Files are those under the folder whose resolved
path stays inside it (a symlink out of the folder is skipped).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from agents.tools.base import FunctionTool, ToolConfig, ToolError, function_tool, register_tool

_WORD = re.compile(r"[a-z0-9]+")


class LookupConfig(ToolConfig):
    folder: Path = Field(description="folder of text files to search; relative to the mission file")
    patterns: list[str] = Field(["*.txt", "*.md"], min_length=1, description="file name globs, searched recursively")
    max_results: int = Field(5, ge=1, le=100)
    max_files: int = Field(1000, ge=1)
    max_file_bytes: int = Field(1_000_000, ge=1)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def search(root: Path, query: str, config: LookupConfig) -> list[tuple[int, str, int, str]]:
    """(score, relative file, line number, line) for the best matching lines, best first."""
    terms = _words(query)
    if not terms:
        raise ToolError("empty query: give some words to look up")
    root = root.resolve()
    if not root.is_dir():
        raise ToolError(f"lookup folder does not exist: {root}")
    files: set[Path] = set()
    for pattern in config.patterns:
        for path in root.rglob(pattern):
            real = path.resolve()
            if real.is_file() and root in real.parents:
                files.add(path)
    hits: list[tuple[int, str, int, str]] = []
    for path in sorted(files)[: config.max_files]:
        if path.stat().st_size > config.max_file_bytes:
            continue
        rel = str(path.relative_to(root))
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            score = len(terms & _words(line))
            if score:
                hits.append((score, rel, number, line.strip()))
    hits.sort(key=lambda h: (-h[0], h[1], h[2]))
    return hits[: config.max_results]


@register_tool("lookup", "search local reference text files: input is a few keywords; returns the best lines",
               LookupConfig, usage="<keywords>")
def lookup(config: LookupConfig, base_dir: Path) -> FunctionTool:
    root = base_dir / config.folder

    async def run(tool_input: str) -> str:
        hits = search(root, tool_input, config)
        if not hits:
            return f"no lines match {tool_input.strip()!r}"
        return "\n".join(f"{rel}:{number}: {line}" for _, rel, number, line in hits)

    return function_tool("lookup", run)
