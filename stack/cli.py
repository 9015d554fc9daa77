"""The `art` command. Sub-commands from other packages register themselves here.

The app is a ``cli.errors.BoundaryGroup``: an expected failure of any sub-command (bad configuration,
no store, a refused training run, a replay that cannot start, invalid input) is one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from agents.recording import AgentError
from cli.errors import BoundaryGroup
from cli.output import out
from config.errors import ConfigError
from consumers.replay_model import ReplayError
from judges.errors import JudgeError
from schemas.errors import SchemaError
from store.clickhouse import StoreError
from trainer.errors import TrainerError


class ArtGroup(BoundaryGroup):
    expected = (*BoundaryGroup.expected, ConfigError, SchemaError, StoreError, TrainerError, ReplayError, JudgeError,
                AgentError)


def _version() -> str:
    try:
        return version("art-stream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


app = typer.Typer(name="art", help="ART Stream: agents learn from their own runs.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, cls=ArtGroup)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"art {_version()}")
        raise typer.Exit()


@app.callback()
def _root(show_version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version, help="print the version and exit")] = False) -> None:
    """ART Stream: agents learn from their own runs."""


_registered = False


def _register_all() -> None:
    # Each package adds its commands; imports stay light (no torch at import time).
    import importlib

    global _registered
    if _registered:
        return
    _registered = True
    modules = ("stack.init_config", "stack.commands", "stack.demo", "agents.cli", "trainer.cli", "bench.cli",
               "stack.replay_commands", "stack.report", "serving.cli", "learning.cli", "agents.capture.cli",
               "ui.cli", "stack.process_commands")
    for module in modules:
        importlib.import_module(module).register(app)


def build_app() -> typer.Typer:
    """The `art` app with every sub-command (what the console script runs; tests invoke it too)."""
    _register_all()
    return app


def main() -> None:
    build_app()()
