"""Reads the ClickHouse mirror of the session log, the source the stream repairs from.

Faust's table recovery is not exact on the embedded broker and a worker's in-memory step cache
dies with it; the sink's ``session_events`` table is exact, so lost state is refolded from there.
Lookups run in worker threads, several at once: a clickhouse-connect client holds one HTTP session,
which ClickHouse refuses to share between concurrent queries, so each thread gets its own client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.models import SessionEvent
from streams.state import Held, Origin, record_digest


class Mirror:
    def __init__(self, connect: Callable[[], Client], codec: Codec) -> None:
        self._connect = connect
        self._local = threading.local()
        self.codec = codec

    @property
    def client(self) -> Client:
        """This thread's client (created on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
        return client

    def sessions(self, session_ids: list[str]) -> dict[str, list[Held]]:
        """Every stored event of several sessions, in one query per few thousand (the sweeper's batch)."""
        out: dict[str, list[Held]] = {sid: [] for sid in session_ids}
        for start in range(0, len(session_ids), 2000):
            result = self.client.query(
                "SELECT session_id, payload, log_epoch, topic, partition, offset FROM session_events "
                "WHERE session_id IN {ids:Array(String)} ORDER BY session_id, seq, log_epoch, offset "
                "LIMIT 1 BY session_id, seq", parameters={"ids": session_ids[start:start + 2000]},
                column_formats={"payload": "bytes"})
            for sid, *row in result.result_rows:
                held = self._held(*row)
                if held is not None:
                    out[sid].append(held)
        return out

    def _held(self, payload: bytes, epoch: int, topic: str, partition: int, offset: int) -> Held | None:
        raw = bytes(payload)
        try:
            event = self.codec.decode(raw, expect=SessionEvent)
        except CodecError:
            return None
        return Held.of(event, record_digest(raw), len(raw), Origin(log_epoch=epoch, topic=topic, partition=partition,
                                                                   offset=offset))

    def events(self, session_id: str, seqs: list[int] | None = None, from_seq: int | None = None) -> list[Held]:
        """Events of one session from the mirror (all, only ``seqs``, or from ``from_seq`` on), in seq
        order, each with its digest and log coordinates."""
        where = "session_id = {sid:String}"
        if seqs is not None:
            where += " AND seq IN {seqs:Array(Int64)}"
        if from_seq is not None:
            where += " AND seq >= {from_seq:Int64}"
        result = self.client.query(
            f"SELECT payload, log_epoch, topic, partition, offset FROM session_events WHERE {where} "
            "ORDER BY seq, log_epoch, offset LIMIT 1 BY seq",
            parameters={"sid": session_id, "seqs": seqs or [], "from_seq": from_seq or 0},
            column_formats={"payload": "bytes"})
        return [h for row in result.result_rows if (h := self._held(*row)) is not None]
