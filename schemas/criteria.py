"""Success criteria that name a file, and how a ``file_write`` step's input is read: one contract for
the tool that writes, the suite that asks for the file and the judges (Python and SQL) that check it.

Why the judge checks files from the event trail: the pipeline never sees the agent's sandbox, yet a
task such as "save the result to out/sum.txt, then answer" is not done by answering alone. Without
this, a run that skipped the write got full task completion from the judge while the suite's exact
check failed it, and the trainer learned to skip the write.

A file criterion is ``file:<path> = <content>``: met when the last ``file_write`` call without an
error whose path is ``<path>`` wrote ``<content>`` (trailing newlines of what was written aside;
paths compared after stripping whitespace and any leading ``./``).
"""

from __future__ import annotations

import json
import re

FILE_PREFIX = "file:"
LEADING_DOTS = r"^(\./)+"
"""Removed from both paths before comparing (also in ``judges.heuristic_sql``)."""
TRAILING_NEWLINES = r"\n+$"
"""Removed from what was written before comparing (``str.rstrip("\\n")``; also in ``judges.heuristic_sql``)."""


def file_criterion(path: str, content: str) -> str:
    """The criterion asking that ``path`` hold exactly ``content``."""
    return f"{FILE_PREFIX}{path} = {content}"


def parse_file_criterion(criterion: str) -> tuple[str, str] | None:
    """(path, expected content) of a stripped criterion starting with ``file:``; None for any other.
    A file criterion without ``=`` asks for nothing checkable: ``("", "")`` never matches a write."""
    if not criterion.startswith(FILE_PREFIX):
        return None
    path, sep, expected = criterion[len(FILE_PREFIX):].partition("=")
    return (same_path(path), expected.strip()) if sep else ("", "")


def same_path(path: str) -> str:
    """The form two paths are compared in."""
    return re.sub(LEADING_DOTS, "", path.strip())


def written_content(content: str) -> str:
    """What a written file's content is compared as."""
    return content.rstrip("\n")


def write_target(text: str) -> tuple[str, str]:
    """(path, content) of a ``file_write`` input: ``{"path": ..., "content": ...}`` (content that is not a
    string is written as its JSON) or the path on the first line and the content after it. ValueError
    with the reason when a JSON input is not such an object."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"file_write input is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("path"), str):
            raise ValueError('file_write expects {"path": "...", "content": "..."}')
        content = doc.get("content", "")
        return doc["path"], content if isinstance(content, str) else json.dumps(content)
    path, _, content = text.partition("\n")
    return path, content


def file_criterion_met(criterion: str, writes: list[str]) -> bool:
    """Whether the file criterion holds, given the inputs of the run's error-free ``file_write`` calls
    in order (``writes``)."""
    parsed = parse_file_criterion(criterion)
    if parsed is None or not parsed[0]:
        return False
    path, expected = parsed
    last = None
    for text in writes:
        try:
            written_path, content = write_target(text)
        except ValueError:  # a recorded call the tool could not have run: it wrote nothing
            continue
        if same_path(written_path) == path:
            last = content
    return last is not None and written_content(last) == expected
