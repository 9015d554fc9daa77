"""What the live page reads from the broker: each partition's highwater and each group's commits.

Read-only: no group is joined, nothing is produced or committed. The embedded broker's end offsets
(ListOffsets latest) are wrong (the last batch's base offset + 1, docs/broker.md), so the log end
shown is the highwater of a fetch response, which is right on Tansu and Kafka alike. Each sample
fetches at most one byte per partition from the last highwater seen (ListOffsets only places the
first fetch of a partition; it is at or below the true end on both brokers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from pydantic import BaseModel

log = logging.getLogger(__name__)
LATEST = -1
MAX_GROUPS = 50


class GroupLag(BaseModel):
    group: str
    topic: str
    committed: int  # sum over partitions with a commit
    highwater: int
    lag: int  # records in the log not yet committed by the group (a partition without a commit: all of it)
    partitions: int


class BrokerSample(BaseModel):
    highwaters: dict[str, int]  # topic -> sum of its partitions' highwaters
    partitions: dict[str, int]
    groups: list[GroupLag]


class BrokerProbe:
    """One connection to one bootstrap address, reused across samples."""

    def __init__(self, bootstrap: str, timeout_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._known: dict[TopicPartition, int] = {}

    async def sample(self, topics: Iterable[str], groups: Iterable[str] = ()) -> BrokerSample:
        """Highwaters of ``topics``, and the lag of every consumer group that has committed on them
        (the broker's groups, at most ``MAX_GROUPS``; ``groups`` are asked for whether listed or not)."""
        return await asyncio.wait_for(self._sample(list(topics), list(groups)), self.timeout_s)

    async def _groups(self, wanted: list[str]) -> list[str]:
        admin = await self._admin_client()
        try:
            found = [str(g[0]) for g in await admin.list_consumer_groups()]
        except Exception as exc:  # listing is a convenience: the wanted names are still asked for
            log.debug("listing consumer groups failed: %s", exc)
            found = []
        return sorted(set(wanted) | set(found))[:MAX_GROUPS]

    async def close(self) -> None:
        for closer in (self._admin, self._client):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()
        self._client = self._admin = None

    async def _sample(self, topics: list[str], wanted: list[str]) -> BrokerSample:
        client = await self._kafka()
        await client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(client.cluster.partitions_for_topic(t) or ())]
        highwater = await self._highwaters(client, tps)
        admin = await self._admin_client()
        lags: list[GroupLag] = []
        for group in await self._groups(wanted):
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            except Exception as exc:  # a group that went away between listing and asking
                log.debug("offsets of group %s: %s", group, exc)
                continue
            offsets = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
            for topic in topics:
                parts = [tp for tp in tps if tp.topic == topic]
                if not any(tp in offsets for tp in parts):
                    continue  # the group does not read this topic
                lags.append(GroupLag(
                    group=group, topic=topic, committed=sum(offsets.get(tp, 0) for tp in parts),
                    highwater=sum(highwater.get(tp, 0) for tp in parts), partitions=len(parts),
                    lag=sum(max(0, highwater.get(tp, 0) - offsets.get(tp, 0)) for tp in parts)))
        return BrokerSample(highwaters={t: sum(v for tp, v in highwater.items() if tp.topic == t) for t in topics},
                            partitions={t: sum(1 for tp in tps if tp.topic == t) for t in topics}, groups=lags)

    async def _highwaters(self, client: AIOKafkaClient, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        unknown = [tp for tp in tps if tp not in self._known]
        if unknown:
            self._known.update(await self._list_latest(client, unknown))
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
        for tp in tps:
            node = client.cluster.leader_for_partition(tp)
            if node is None or node < 0:
                continue
            by_node.setdefault(node, {}).setdefault(tp.topic, []).append((tp.partition, self._known.get(tp, 0), 1))
        out: dict[TopicPartition, int] = {}
        for node, topics in by_node.items():
            # max_wait 1 ms, min_bytes 0: Tansu answers a zero wait with no partitions at all
            response = await client.send(node, FetchRequest(1, 0, 1 << 20, 0, list(topics.items())))
            for topic, partitions in response.topics:
                for part in partitions:
                    tp, error_code, highwater = TopicPartition(topic, part[0]), part[1], part[2]
                    if error_code == 0 and highwater >= 0:
                        out[tp] = self._known[tp] = int(highwater)
                    else:  # e.g. a log that restarted below our last position: place it again next time
                        self._known.pop(tp, None)
        return out

    async def _list_latest(self, client: AIOKafkaClient, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
        for tp in tps:
            node = client.cluster.leader_for_partition(tp)
            if node is not None and node >= 0:
                by_node.setdefault(node, {}).setdefault(tp.topic, []).append((tp.partition, LATEST))
        out: dict[TopicPartition, int] = {}
        for node, topics in by_node.items():
            response = await client.send(node, OffsetRequest(-1, 0, list(topics.items())))
            for topic, partitions in response.topics:
                for part, error_code, *info in partitions:
                    if error_code == 0:
                        offset = info[0][0] if response.API_VERSION == 0 and info[0] else info[1]
                        out[TopicPartition(topic, part)] = max(0, int(offset))
        return out

    async def _kafka(self) -> AIOKafkaClient:
        if self._client is None:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.timeout_s * 1000))
            await asyncio.wait_for(client.bootstrap(), self.timeout_s)
            self._client = client
        return self._client

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.timeout_s * 1000))
            await asyncio.wait_for(admin.start(), self.timeout_s)
            self._admin = admin
        return self._admin
