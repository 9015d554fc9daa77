"""The one error boundary of `art`: an expected failure is one line on stderr and exit code 2.

Expected failures are the root errors of our packages (bad configuration, no store, a refused
training run, a replay that cannot start) and validation errors of the models at our boundaries. The
command modules raise them and leave the printing here; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from cli.output import error, one_line

USAGE_EXIT = 2


def describe(exc: BaseException) -> str:
    """One line for an expected failure; a validation error names its first field and input."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or exc.title
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        given = f" (got {first['input']!r})" if "input" in first and not isinstance(first["input"], dict) else ""
        return f"invalid {where}: {msg}{given}{more}"
    return one_line(str(exc)) or exc.__class__.__name__


class BoundaryGroup(TyperGroup):
    """A typer group whose sub-commands' expected errors end as one line and ``USAGE_EXIT``; the app
    that assembles the commands names them in a subclass (``stack.cli``)."""

    expected: tuple[type[BaseException], ...] = (ValidationError,)

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context, which typer does not export
        try:
            return super().invoke(ctx)
        except self.expected as exc:
            error(describe(exc))
            raise typer.Exit(USAGE_EXIT) from None

