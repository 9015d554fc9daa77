"""`art worker`, `art sink`, `art topics`: the processes `art up` and the compose file start, as `art`
commands too. Their options stay those of ``python -m streams.worker`` / ``consumers.run`` /
``stack.topics_cli`` (compose runs those), so both spellings take the same flags and print the same help."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import typer

ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "worker": ("streams.worker", "One Faust stream worker (session fold, judging, RULER)."),
    "sink": ("consumers.run", "One ClickHouse sink process."),
    "topics": ("stack.topics_cli", "Create the topics (and with --schema the ClickHouse tables) of an external "
                                   "cluster."),
}


def _forward(module: str) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        importlib.import_module(module).main(list(ctx.args))  # heavy imports (Faust) only when run

    return command


def register(app: typer.Typer) -> None:
    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    for name, (module, help_text) in ENTRY_POINTS.items():
        app.command(name, help=f"{help_text} Same flags as `python -m {module}` (`art {name} --help`).",
                    context_settings=settings, add_help_option=False)(_forward(module))
