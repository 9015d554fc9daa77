"""`art ui`: serve the web app in the foreground (the same app `art up` runs as a child)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from config.errors import ConfigError
from config.settings import load_config

err_console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="art.toml (default: ./art.toml or $ART_CONFIG)")]


def ui(port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (default ui.port, else 8765)")] = None,
       config: ConfigOpt = None) -> None:
    """Read-only web UI on 127.0.0.1: live fleet numbers, trajectories, judge/reward versions, models."""
    from ui.app import serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    chosen = port if port is not None else (cfg.ui.port or 8765)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(cfg, port=chosen, ready=lambda url: err_console.print(f"art ui on {url} (Ctrl-C stops)")))
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot listen on 127.0.0.1:{chosen}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command()(ui)
