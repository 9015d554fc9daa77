"""After the log is lost (the embedded broker keeps it in memory), put back what the stream still needs.

Faust's tables live in the log too, so a broker restart (or a whole stack killed and started again)
forgets every open session and every RULER group being collected. The ClickHouse mirror is exact,
so before the stream starts on the new log, the records it still needs are produced again from the
store, byte for byte:

- every session that started (seq 0 is stored) and has no trajectory: all its stored events, to
  the session-events topic (the fold rebuilds its state; the sink drops them as known keys);
- every recent trajectory that lacks its judgment or its reward under today's versions, together
  with the rest of its group, to the trajectories topic (judged again, regrouped, scored as a group;
  derived ids are deterministic, so what was stored already is dropped as a duplicate).

Records the stream dead-lettered are not put back (they would be dead-lettered twice).
Events that were acknowledged but never stored are not here: the SDK re-sends those (it keeps
every event until the store has it, ``agents.tracking``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from schemas.limits import MAX_MESSAGE_BYTES
from schemas.models import dead_letter_id
from schemas.topics import Topics

log = logging.getLogger(__name__)

OPEN_SESSIONS = """
SELECT session_id, payload, log_epoch, topic, partition, offset FROM session_events
WHERE session_id IN (SELECT session_id FROM session_events WHERE seq = 0)
  AND session_id NOT IN (SELECT session_id FROM trajectories)
ORDER BY session_id, seq LIMIT 1 BY session_id, seq"""

UNSCORED_TRAJECTORIES = """
WITH unfinished AS (
    SELECT session_id, group_id FROM trajectories
    WHERE inserted_at > now64(3) - toIntervalSecond({window:UInt32})
      AND (session_id NOT IN (SELECT session_id FROM judgments
                              WHERE judge_name = {judge:String} AND judge_version = {judge_version:String})
           OR session_id NOT IN (SELECT session_id FROM rewards WHERE reward_version = {reward_version:String})))
SELECT session_id, any(payload) AS payload FROM trajectories
WHERE session_id IN (SELECT session_id FROM unfinished)
   OR (group_id IS NOT NULL AND group_id IN (SELECT group_id FROM unfinished WHERE group_id IS NOT NULL))
GROUP BY session_id ORDER BY session_id"""


@dataclass
class Rebuilt:
    sessions: int = 0
    events: int = 0
    trajectories: int = 0


def _dead_lettered(client: Client, rows: Sequence[Sequence[Any]]) -> set[Any]:
    """Ids of the rows (with log coordinates in columns 2..5) that are already dead letters."""
    ids = [dead_letter_id(r[2], r[3], r[4], r[5]) for r in rows]
    found: set[Any] = set()
    for start in range(0, len(ids), 10_000):
        found |= {r[0] for r in client.query("SELECT event_id FROM dead_letters WHERE event_id IN {ids:Array(UUID)}",
                                             parameters={"ids": ids[start:start + 10_000]}).result_rows}
    return found


async def _produce_all(producer: AIOKafkaProducer, records: list[tuple[str, bytes, bytes]], attempts: int = 6) -> None:
    """Every record acknowledged; the ones a broker refused are sent again (a broker that has just come
    up may answer a first batch with an error, e.g. Tansu's UnknownError). A record sent twice is a
    duplicate the fold and the sink drop; one never acknowledged would be lost, so that fails the start."""
    for attempt in range(attempts):
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [(record, result) for record, result in zip(records, results, strict=True)
                  if isinstance(result, BaseException)]
        if not failed:
            return
        records = [record for record, _ in failed]
        if attempt == attempts - 1:
            raise failed[0][1]
        log.warning("the broker refused %d of the rebuilt records (%s); sending them again", len(records),
                    failed[0][1].__class__.__name__)
        await asyncio.sleep(0.5 * 2**attempt)


async def rebuild_from_mirror(client: Client, bootstrap: str, topics: Topics, *, judge: str, judge_version: str,
                              reward_version: str, window_s: float) -> Rebuilt:
    """Produce what the stream needs from the store into the (new, empty) log; returns what was put back."""
    done = Rebuilt()
    rows = client.query(OPEN_SESSIONS, column_formats={"payload": "bytes"}).result_rows
    refused = _dead_lettered(client, rows) if rows else set()
    trajectories = client.query(UNSCORED_TRAJECTORIES, column_formats={"payload": "bytes"}, parameters={
        "window": int(window_s), "judge": judge, "judge_version": judge_version,
        "reward_version": reward_version}).result_rows
    if not rows and not trajectories:
        log.info("rebuilt from the store: nothing was open")
        return done
    records: list[tuple[str, bytes, bytes]] = []
    sessions: set[str] = set()
    for row in rows:
        if dead_letter_id(row[2], row[3], row[4], row[5]) in refused:
            continue
        records.append((topics.session_events.name, row[0].encode(), bytes(row[1])))
        sessions.add(row[0])
    records += [(topics.trajectories.name, session_id.encode(), bytes(payload)) for session_id, payload in trajectories]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES,
                                linger_ms=5)
    await producer.start()
    try:
        await _produce_all(producer, records)
        done = Rebuilt(sessions=len(sessions), events=len(records) - len(trajectories),
                       trajectories=len(trajectories))
    finally:
        await producer.stop()
    log.info("rebuilt from the store: %d open sessions (%d events), %d trajectories to judge or score",
             done.sessions, done.events, done.trajectories)
    return done
