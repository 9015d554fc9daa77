"""`art ui`: serve the web app in the foreground (the same app `art up` runs as a child)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

import typer

from cli.logs import configure_logging
from cli.options import ConfigOpt
from cli.output import err, fail
from config.settings import load_config


def ui(port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (default ui.port, else 8765)")] = None,
       config: ConfigOpt = None) -> None:
    """Read-only web UI on 127.0.0.1: live fleet numbers, trajectories, judge/reward versions, models."""
    from ui.app import serve

    configure_logging(logging.WARNING)
    cfg = load_config(config)  # a ConfigError ends at the `art` error boundary: one line, exit 2
    chosen = port if port is not None else (cfg.ui.port or 8765)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(cfg, port=chosen, ready=lambda url: err.print(f"art ui on {url} (Ctrl-C stops)")))
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{chosen}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command()(ui)
