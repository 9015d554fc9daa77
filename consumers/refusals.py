"""Records the store refuses: isolated from the rest of their batch and dead-lettered by the sink.

A batch ClickHouse refuses is split in halves until the rows it refuses alone are found; the rest
is inserted (an oversize or malformed row must not hold back those behind it, nor be retried
forever). Each refused record becomes a ``dead_letters`` row with the reason and its log
coordinates, under the same id the stream would give it (``schemas.models.dead_letter_id``), so a
record refused by both is one dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from consumers.rows import DEAD_LETTERS
from schemas.models import dead_letter_id
from store.ingest import is_refusal

log = logging.getLogger(__name__)
Source = tuple[str, int, int, bytes]  # topic, partition, offset, raw record


def dead_letter_row(log_epoch: int, source: Source, reason: str) -> list[Any]:
    topic, partition, offset, raw = source
    row = [dead_letter_id(log_epoch, topic, partition, offset), topic, partition, offset, raw, reason,
           datetime.now(UTC), log_epoch, topic, partition, offset]
    assert len(row) == len(DEAD_LETTERS.columns)
    return row


def insert_isolating(client: Client, table: str, columns: Sequence[str], rows: list[list[Any]],
                     token: str) -> dict[int, str]:
    """Insert ``rows``; returns {index: ClickHouse's reason} of the rows it refused on their own.

    Failures that are not refusals (unreachable, overloaded) are raised: the caller retries the batch.
    Each part carries its own deduplication token, so a retried batch re-inserts nothing."""
    refused: dict[int, str] = {}
    pending = [(0, len(rows))]
    while pending:
        lo, hi = pending.pop()
        if lo == hi:
            continue
        part = rows[lo:hi]
        suffix = "" if (lo, hi) == (0, len(rows)) else f":{lo}-{hi}"
        try:
            # column-oriented: clickhouse-connect's row transposition costs more than zip(*rows)
            client.insert(table, list(zip(*part, strict=True)), column_names=list(columns), column_oriented=True,
                          settings={"insert_deduplication_token": f"{token}{suffix}"})
        except Exception as exc:
            if not is_refusal(exc):
                raise
            if hi - lo == 1:
                refused[lo] = f"ClickHouse refused the row for {table}: {str(exc).splitlines()[0][:300]}"
                log.error("%s", refused[lo])
                continue
            mid = (lo + hi) // 2
            pending += [(mid, hi), (lo, mid)]  # the earlier half first
    return refused
