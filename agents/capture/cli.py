"""`art proxy` and `art otlp`: the capture servers in the foreground (standalone or next to `art up`)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from cli.logs import configure_logging
from cli.options import ConfigOpt
from cli.output import err, fail
from config.settings import load_config


def _serve(kind: str, config: Path | None, host: str | None, port: int, upstream: str | None) -> None:
    from agents.capture.run import serve
    from agents.tracking import TrackingError

    configure_logging(quiet=("aiokafka",))
    cfg = load_config(config)
    host = host or cfg.capture.host
    if kind == "proxy":
        upstream = upstream or cfg.capture.proxy_upstream
        if not upstream:
            raise fail("no upstream: pass --upstream URL or set capture.proxy_upstream", 2)
    where = f"http://{host}:{port}" + ("/v1" if kind == "proxy" else "/v1/traces")
    err.print(f"{kind} on {where}" + (f" -> {upstream}" if upstream else "") + " (Ctrl-C stops)")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(kind, cfg, host=host, port=port, upstream=upstream))
    except (TrackingError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None


def proxy(upstream: Annotated[str | None, typer.Option(
              help="OpenAI-compatible base URL to forward to, e.g. http://127.0.0.1:8000/v1 "
                   "(default capture.proxy_upstream)")] = None,
          port: Annotated[int, typer.Option(help="port to listen on")] = 8088,
          host: Annotated[str | None, typer.Option(help="interface (default capture.host)")] = None,
          config: ConfigOpt = None) -> None:
    """OpenAI-compatible recording proxy: point an agent's base_url here and its calls become steps.
    Sessions are named by X-ART-Session/-Agent/-Group/-Objective headers or found by conversation prefix;
    POST /v1/art/sessions/{id}/complete ends one, else the idle timeout does."""
    _serve("proxy", config, host, port, upstream)


def otlp(port: Annotated[int, typer.Option(help="port to listen on (OTLP/HTTP's usual 4318)")] = 4318,
         host: Annotated[str | None, typer.Option(help="interface (default capture.host)")] = None,
         config: ConfigOpt = None) -> None:
    """OTLP/HTTP receiver for GenAI spans (POST /v1/traces, protobuf or JSON): a trace becomes a session."""
    _serve("otlp", config, host, port, None)


def register(app: typer.Typer) -> None:
    app.command()(proxy)
    app.command()(otlp)
