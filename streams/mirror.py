"""Reads the ClickHouse mirror of the session log, the source the stream repairs from.

Faust's table recovery is not exact on the embedded broker and a worker's in-memory step cache
dies with it; the sink's ``session_events`` table is exact, so lost state is refolded from there.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from schemas.codec import Codec
from schemas.errors import CodecError
from schemas.models import SessionEvent


class Mirror:
    def __init__(self, client: Client, codec: Codec) -> None:
        self.client = client
        self.codec = codec

    def events(self, session_id: str, seqs: list[int] | None = None) -> list[SessionEvent]:
        """Events of one session from the mirror (all, or only ``seqs``), in seq order."""
        where = "session_id = {sid:String}" + (" AND seq IN {seqs:Array(Int64)}" if seqs is not None else "")
        result = self.client.query(
            f"SELECT payload FROM session_events WHERE {where} ORDER BY seq LIMIT 1 BY seq",
            parameters={"sid": session_id, "seqs": seqs or []}, column_formats={"payload": "bytes"})
        out: list[SessionEvent] = []
        for (payload,) in result.result_rows:
            raw = bytes(payload)
            try:
                out.append(self.codec.decode(raw, expect=SessionEvent))
            except CodecError:
                continue
        return out

