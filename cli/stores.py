"""Store clients for commands: ClickHouse's refusals become one line, never a traceback.

Store errors of our own (no store, unreachable server) propagate to the error boundary (exit 2);
an error ClickHouse raises for a statement (syntax, READONLY, unknown table) is the command's result:
one line with ClickHouse's reason and exit 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from clickhouse_connect.driver.client import Client

from cli.output import fail
from config.settings import ArtConfig
from store.clickhouse import StoreError, error_text, reader


@contextmanager
def store_reader(cfg: ArtConfig) -> Iterator[Client]:
    """The one read-only path (``store.clickhouse.reader``) with ClickHouse's errors as one line, exit 1."""
    try:
        with reader(cfg) as client:
            yield client
    except (StoreError, typer.Exit):
        raise
    except Exception as exc:  # a refused or failed query: ClickHouse's own words
        raise fail(error_text(exc)) from None
