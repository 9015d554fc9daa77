"""A Faust agent or timer that dies must not leave a live process doing nothing.

Faust logs an agent's exception and keeps the process (and its web server, heartbeats and group
membership) up, so the supervisor never sees a death and the partitions stall for good. Bad records
are dead-lettered before they get here; what still escapes is an infrastructure failure (the broker
refused a write) or a bug: the process exits, the supervisor restarts it, and the uncommitted batch
is delivered again — every effect is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
EXIT_CODE = 70  # EX_SOFTWARE


def exit_process(what: str, exc: BaseException) -> None:
    log.critical("%s crashed; exiting so that the supervisor restarts this worker", what, exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_CODE)


async def guarded(what: str, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body``; any exception but cancellation takes the process down."""
    try:
        return await body()
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        exit_process(what, exc)
