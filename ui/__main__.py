"""``python -m ui --port N``: the UI as a child of `art up` (stops on SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from cli.logs import configure_logging
from config.settings import load_config
from ui.app import serve


async def _run(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve(load_config(args.config), port=args.port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ui", description="Serve the read-only ART Stream web UI on 127.0.0.1.")
    parser.add_argument("--config", type=Path, default=None, help="art.toml (default: ./art.toml or $ART_CONFIG)")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    configure_logging(logging.WARNING)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
