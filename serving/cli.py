"""`art serve`: the OpenAI-compatible endpoint over the base model and the registry's adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.logs import configure_logging
from cli.options import ConfigOpt
from cli.output import err as console
from cli.output import fail


def base_dir_for(model_dir: Path | None, configured: str, records: list[Any]) -> Path:
    """--model-dir, else [art.models] base_model, else the newest base row of the registry."""
    from trainer.registry import BASE_OBJECTIVE

    if model_dir is not None:
        return model_dir
    if configured:
        return Path(configured)
    bases = sorted((r for r in records if r.objective == BASE_OBJECTIVE), key=lambda r: r.created_at)
    if bases:
        return Path(bases[-1].path)
    raise typer.BadParameter("no base model: run `art models base`, set [art.models] base_model, or pass --model-dir")


def _store_fetch(config: Path | None) -> tuple[Any, Any]:
    """(config, registry fetch) over the live stack's gateway, or the configured store."""
    from config.settings import load_config
    from schemas.runtime import clickhouse_dsn_for
    from serving.server import registry_fetch
    from store.clickhouse import ensure_schema, writer

    cfg = load_config(config)  # ConfigError, StoreError: one line at the `art` error boundary
    dsn = clickhouse_dsn_for(cfg)
    client = writer(cfg, dsn)  # the running stack's gateway with its secret, else the directory itself
    ensure_schema(client)
    if dsn.startswith("chdb://"):
        console.print(f"no stack running: opening {dsn} here (start `art up` first to share the store)")
    return cfg, registry_fetch(client)


def serve(
    port: Annotated[int, typer.Option(help="TCP port (0: any free port)")] = 8000,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    model_dir: Annotated[Path | None, typer.Option(help="base HF model directory (default: art.models.base_model, "
                                                        "else the registry's base model)")] = None,
    config: ConfigOpt = None,
    poll_interval: Annotated[float, typer.Option(help="seconds between registry polls (champion hot-swap)")] = 1.0,
    max_batch: Annotated[int, typer.Option(help="sequences decoded together")] = 16,
    max_adapters: Annotated[int, typer.Option(help="LoRA adapters kept loaded (least recently used leave)")] = 8,
    max_tokens: Annotated[int, typer.Option(help="completion limit when a request sets none")] = 512,
) -> None:
    """Serve base, champion, champion:<specialization> and registry model ids over /v1/chat/completions."""
    from serving.engine import Engine, EngineError
    from serving.server import Server

    configure_logging()
    cfg, fetch = _store_fetch(config)
    base = base_dir_for(model_dir, cfg.models.base_model, fetch())
    console.print(f"loading {base} ...")
    try:
        engine = Engine.load(base, max_batch=max_batch, max_adapters=max_adapters)
    except (EngineError, OSError) as exc:
        raise fail(str(exc)) from None
    server = Server(engine, fetch, base, host=host, port=port, poll_interval_s=poll_interval,
                    default_max_tokens=max_tokens)
    console.print(f"serving on {server.url} (names: base, champion, champion:<specialization>, model ids)")
    server.run()


def vllm_sync(
    url: Annotated[str, typer.Option(help="the vLLM server (started with --enable-lora and "
                                          "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)")],
    model_dir: Annotated[Path | None, typer.Option(help="the base directory vLLM serves, as this machine sees it "
                                                        "(default as for `art serve`)")] = None,
    config: ConfigOpt = None,
    poll_interval: Annotated[float, typer.Option(help="seconds between registry polls")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="reconcile once and exit")] = False,
) -> None:
    """Keep a vLLM server's LoRA adapters equal to the registry: model ids, champion, champion:<specialization>."""
    import time

    import httpx

    from serving.catalog import RegistryWatch
    from serving.vllm_sync import sync_once

    configure_logging()
    cfg, fetch = _store_fetch(config)
    watch = RegistryWatch(fetch, base_dir_for(model_dir, cfg.models.base_model, fetch()))
    with httpx.Client(base_url=url.rstrip("/").removesuffix("/v1"), timeout=120, trust_env=False) as http:
        while True:
            try:
                for action in sync_once(http, watch.refresh()):
                    console.print(action)
            except httpx.HTTPError as exc:
                console.print(f"[red]vLLM at {url}:[/red] {exc}")
                if once:
                    raise typer.Exit(1) from None
            if once:
                return
            time.sleep(poll_interval)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("vllm-sync")(vllm_sync)
