"""Dead letters for what capture cannot map: the raw input and the reason, on the dead-letter topic.

They go through a tracker of their own (its own spool), so a broker outage spools them like events.
Ids are derived from the source, the bytes and the reason: an exporter that retries the same bad
payload adds no second row.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from agents.tracking import Tracker
from schemas.models import DeadLetter

log = logging.getLogger(__name__)

CAPTURE_NAMESPACE = uuid.UUID("6f1f3d8e-2b0a-4c55-9a57-0f6c3e1d2b44")
RAW_LIMIT = 256 * 1024  # kept of a refused payload: enough to see what it was, small enough for Kafka


def letter_for(source: str, raw: bytes, reason: str) -> DeadLetter:
    digest = hashlib.sha256(raw).hexdigest()
    return DeadLetter(event_id=uuid.uuid5(CAPTURE_NAMESPACE, f"{source}/{digest}/{reason}"), source_topic=source,
                      source_partition=0, source_offset=0, raw=raw[:RAW_LIMIT], reason=reason)


class DeadLetters:
    """``await dead.put(raw, reason)``; counts what it sent."""

    def __init__(self, tracker: Tracker, source: str) -> None:
        self.tracker = tracker
        self.source = source
        self.count = 0

    async def put(self, raw: bytes, reason: str) -> None:
        letter = letter_for(self.source, raw, reason)
        log.info("dead letter from %s: %s", self.source, reason)
        await self.tracker.emit_raw(letter.event_id.bytes, self.tracker.codec.encode(self.tracker.topic, letter))
        self.count += 1
