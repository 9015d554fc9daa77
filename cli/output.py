"""Consoles and result output for people and for pipes.

Results go to stdout, messages and errors to stderr. When stdout is not a terminal nothing is wrapped
at 80 columns (rich's default width for pipes): a line stays one line for ``grep`` and ``cut``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

PIPE_WIDTH = 10_000  # wide enough that no table or line is folded when the stream is a file or a pipe


class PipeAwareConsole(Console):
    """A rich console that measures a terminal as rich does and a pipe or file as ``PIPE_WIDTH`` wide.

    The stream is looked up at every write (rich's default), so CliRunner's captured streams work.
    """

    @property
    def size(self) -> ConsoleDimensions:
        real = super().size
        if self.is_terminal or self._width is not None or os.environ.get("COLUMNS"):
            return real
        return ConsoleDimensions(PIPE_WIDTH, real.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = PipeAwareConsole(highlight=False)
err = PipeAwareConsole(stderr=True, highlight=False)


def one_line(text: str) -> str:
    """Collapse a message to its first non-empty line (ClickHouse and pydantic add stack/context lines)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else str(text).strip() or "unknown error"


def error(message: str) -> None:
    """One ``error: …`` line on stderr."""
    err.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(one_line(message))}", soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr; the caller raises what this returns."""
    error(message)
    return typer.Exit(code)


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table") -> None:
    """A result as a table (full column names, a row count when empty), CSV (``\\n`` line ends) or JSON lines."""
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
    else:
        table = Table(*columns)
        for column in table.columns:  # a header is never cut: its cells fold instead
            column.min_width = len(str(column.header))
            column.overflow = "fold"
        for row in rows:
            table.add_row(*(escape(str(v)) for v in row))
        if columns:
            out.print(table)
        if not rows:
            out.print("0 rows")
