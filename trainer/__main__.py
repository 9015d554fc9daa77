"""`python -m trainer ...`: the trainer's commands without the rest of the CLI (the consumer starts runs this way)."""

from __future__ import annotations

import typer

from trainer.cli import register

app = typer.Typer(name="trainer", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
