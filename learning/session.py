"""What `art eval`, `art loop` and the loop benchmark stand on: a stack, a store client, a model server.

Each is used when it already runs (``art up``; a server given by URL or ``[art.models] llm_base_url``)
and started for the duration otherwise, then stopped again — so every command works on a bare data
dir and never leaves a process behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from config.settings import ArtConfig
from learning.endpoint import ServeProcess
from learning.errors import LearningError
from schemas.runtime import read_stack_info


@dataclass
class Session:
    art: ArtConfig
    client: Client
    base_url: str
    base_dir: Path

    def records(self) -> list[Any]:
        from trainer.registry import list_models

        return list_models(self.client)

    def catalog(self) -> Any:
        from serving.catalog import Catalog

        return Catalog.build(self.records(), self.base_dir)

    def resolve(self, name: str) -> str:
        """The model id ``name`` stands for (base, champion, champion:<spec>, an id), as the server sees it."""
        from serving.catalog import UnknownModel

        try:
            return str(self.catalog().resolve(name).model_id)
        except UnknownModel as exc:
            raise LearningError(str(exc)) from None

    def lineage(self) -> list[str]:
        """Every registry model on the served base (the base row and its adapters): "own" runs."""
        return sorted(self.catalog().models)


def _base_dir(art: ArtConfig, client: Client) -> Path:
    from serving.cli import base_dir_for
    from trainer.registry import list_models

    try:
        return base_dir_for(None, art.models.base_model, list_models(client))
    except Exception as exc:  # typer.BadParameter carries the hint
        raise LearningError(str(getattr(exc, "message", exc))) from None


def idle_timeout_warning(art: ArtConfig) -> str | None:
    """Why a loop on this configuration would lose runs, or None. The stream closes a session that stays
    silent for ``stream.session_idle_timeout_s``; a run waiting on one slow LLM call (up to
    ``learning.request_timeout_s`` on a loaded CPU server) is silent that long, gets closed half-done
    and judged a failure, and its real success never reaches the training window. Measured: 25 of 48
    held-out runs of one `art bench loop` on a shared 2-core machine were closed that way."""
    idle, call = art.stream.session_idle_timeout_s, art.learning.request_timeout_s
    if idle > call:
        return None
    return (f"stream.session_idle_timeout_s ({idle:.0f} s) is not above learning.request_timeout_s ({call:.0f} s): "
            "a run waiting on a slow LLM call is closed as idle and judged half-done; raise it "
            f"(ART_STREAM_SESSION_IDLE_TIMEOUT_S={call + 60:.0f}) for the stack the loop runs on")


@contextmanager
def open_session(art: ArtConfig, config_path: Path | None, base_url: str | None,
                 say: Callable[[str], None] = print) -> Iterator[Session]:
    """The running stack or a fresh embedded one, the store, and the server at ``base_url`` or a child
    `art serve`; everything this started is stopped on exit."""
    from trainer.runs import open_store

    warning = idle_timeout_warning(art)
    if warning:
        say(f"warning: {warning}")
    with ExitStack() as stack:
        if read_stack_info(art.storage.data_dir) is None and not art.kafka.bootstrap:
            from stack.supervisor import Stack

            say(f"starting the embedded stack in {art.storage.data_dir} …")
            running = Stack(art, config_path=config_path.resolve() if config_path else None)
            running.start()
            stack.callback(running.stop)
        client = open_store(art)
        base_dir = _base_dir(art, client)
        url = base_url or art.models.llm_base_url
        if not url:
            say(f"starting `art serve` on {base_dir} …")
            server = ServeProcess(config_path, art.storage.data_dir / "logs" / "serve.log")
            stack.enter_context(server)
            url = server.base_url
            say(f"serving at {url}")
        yield Session(art=art, client=client, base_url=url, base_dir=base_dir)
