"""The `art` command. Sub-commands from other packages register themselves here."""

from __future__ import annotations

import typer

app = typer.Typer(name="art", help="ART Stream: agents learn from their own runs.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _register_all() -> None:
    # Each package adds its commands; imports stay light (no torch at import time).
    import importlib

    modules = ("stack.init_config", "stack.commands", "stack.demo", "agents.cli", "trainer.cli", "bench.cli",
               "stack.replay_commands", "stack.report", "serving.cli", "learning.cli", "agents.capture.cli",
               "ui.cli")
    for module in modules:
        importlib.import_module(module).register(app)


def main() -> None:
    _register_all()
    app()
