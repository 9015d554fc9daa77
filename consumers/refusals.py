"""Records the store refuses: isolated from the rest of their batch and dead-lettered by the sink.

A batch ClickHouse refuses is split in halves until the rows it refuses alone are found; the rest
is inserted (an oversize or malformed row must not hold back those behind it, nor be retried
forever). Each refused record becomes a ``dead_letters`` row with the reason and its log
coordinates, under the same id the stream would give it (``schemas.models.dead_letter_id``), so a
record refused by both is one dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.insert import InsertContext

from consumers.rows import DEAD_LETTERS
from schemas.models import dead_letter_id
from store.ingest import isolate

Source = tuple[str, int, int, bytes]  # topic, partition, offset, raw record


def dead_letter_row(log_epoch: int, source: Source, reason: str) -> list[Any]:
    topic, partition, offset, raw = source
    row = [dead_letter_id(log_epoch, topic, partition, offset), topic, partition, offset, raw, reason,
           datetime.now(UTC), log_epoch, topic, partition, offset]
    assert len(row) == len(DEAD_LETTERS.columns)
    return row


class Inserter:
    """Inserts rows per table, isolating the rows ClickHouse refuses.

    Why a class: clickhouse-connect asks the server ``DESCRIBE TABLE`` before every plain insert, a
    second round trip through the gateway for each table of each batch; one insert context per
    table (dropped when an insert fails, e.g. after the table changed) asks once.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._contexts: dict[tuple[str, tuple[str, ...]], InsertContext] = {}

    def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]], token: str) -> dict[int, str]:
        """Insert ``rows``; returns {index: ClickHouse's reason} of the rows it refused on their own
        (``store.ingest.isolate``). Each part carries its own deduplication token, so a retried batch
        re-inserts nothing."""
        key = (table, tuple(columns))

        def insert(part: list[int]) -> None:
            suffix = "" if len(part) == len(rows) else f":{part[0]}-{part[-1]}"
            context = self._contexts.get(key)
            if context is None:  # column-oriented: clickhouse-connect's row transposition costs more than zip
                context = self.client.create_insert_context(table, list(columns), column_oriented=True)
            context.settings = {"insert_deduplication_token": f"{token}{suffix}"}
            context.data = list(zip(*[rows[i] for i in part], strict=True))
            try:
                self.client.insert(context=context)
            except Exception:
                self._contexts.pop(key, None)
                raise
            finally:
                context.data = None
            self._contexts[key] = context

        refused = isolate(len(rows), insert)
        return {i: reason.replace("the record", f"the row for {table}", 1) for i, reason in refused.items()}
