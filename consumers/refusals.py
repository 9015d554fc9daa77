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


def insert_isolating(client: Client, table: str, columns: Sequence[str], rows: list[list[Any]],
                     token: str) -> dict[int, str]:
    """Insert ``rows``; returns {index: ClickHouse's reason} of the rows it refused on their own
    (``store.ingest.isolate``). Each part carries its own deduplication token, so a retried batch
    re-inserts nothing."""

    def insert(part: list[int]) -> None:
        suffix = "" if len(part) == len(rows) else f":{part[0]}-{part[-1]}"
        # column-oriented: clickhouse-connect's row transposition costs more than zip(*rows)
        client.insert(table, list(zip(*[rows[i] for i in part], strict=True)), column_names=list(columns),
                      column_oriented=True, settings={"insert_deduplication_token": f"{token}{suffix}"})

    refused = isolate(len(rows), insert)
    return {i: reason.replace("the record", f"the row for {table}", 1) for i, reason in refused.items()}
