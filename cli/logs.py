"""One logging setup for every long-running process (stack, worker, sink, servers)."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO, *, quiet: tuple[str, ...] = ()) -> None:
    """INFO lines with time, level and logger on stderr; ``quiet`` loggers only from WARNING."""
    logging.basicConfig(level=level, format=FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
