"""What both stream processors declare the same way: raw-bytes topics and the dead-letter sender.

Records stay bytes through Faust (our codec decodes them, so a bad record is a dead letter, not a
crashed agent); a dead letter's id is derived from where the bad input was, so a redelivered record
is dead-lettered under the same id and stored once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import faust

from schemas.codec import Codec
from schemas.models import DeadLetter
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)
RAW: dict[str, Any] = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def raw_topic(app: faust.App, spec: TopicSpec, **options: Any) -> Any:
    """A Faust topic of raw bytes keys and values, with the spec's partition count."""
    return app.topic(spec.name, partitions=spec.partitions, **RAW, **options)


class DeadLetters:
    """Sends ``DeadLetter`` records with deterministic ids (``namespace`` keeps processors' ids apart)."""

    def __init__(self, app: faust.App, spec: TopicSpec, codec: Codec, namespace: uuid.UUID, log_epoch: int) -> None:
        self.topic = raw_topic(app, spec)
        self.name = spec.name
        self.codec = codec
        self.namespace = namespace
        self.log_epoch = log_epoch

    async def send(self, topic: str, partition: int, offset: int, raw: bytes | None, reason: str,
                   key: str | None = None, log_epoch: int | None = None) -> None:
        """Dead-letter the record at ``topic/partition@offset`` of ``log_epoch`` (default: this run's;
        a record put back from the store keeps its own), or ``key`` for one that has no offset."""
        epoch = self.log_epoch if log_epoch is None else log_epoch
        name = key or f"{epoch}/{topic}/{partition}/{offset}"
        letter = DeadLetter(event_id=uuid.uuid5(self.namespace, name), source_topic=topic,
                            source_partition=partition, source_offset=offset, raw=raw or b"", reason=reason)
        await self.topic.send(value=self.codec.encode(self.name, letter))
        log.warning("dead-lettered %s/%d@%d: %s", topic, partition, offset, reason[:300])
