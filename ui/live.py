"""The live page's numbers: log and store rates, open sessions, consumer lag, dead letters.

Rates are differences between samples this process took (the log's highwaters, the tables' row
counts, which ClickHouse answers from part metadata), over the last ``WINDOW_S`` seconds. A sample
is shared by every browser polling within ``MIN_INTERVAL_S``. Without a running stack there is no
broker to ask: the store's numbers are still shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from config.settings import ArtConfig
from schemas.runtime import read_stack_info
from ui.broker import BrokerProbe, BrokerSample
from ui.store import UiStore

log = logging.getLogger(__name__)
WINDOW_S = 10.0
MIN_INTERVAL_S = 1.0
TABLES = ("session_events", "steps", "trajectories", "judgments", "rewards", "dead_letters")
# row counts come from part metadata; open sessions: started within the window, no trajectory yet
_COUNTS = "SELECT " + ", ".join(f"(SELECT count() FROM {t}) AS {t}" for t in TABLES) + """,
  (SELECT uniqExact(session_id) FROM session_events
   WHERE seq = 0 AND ts >= now64(6) - toIntervalSecond({window:UInt32})
     AND session_id NOT IN (SELECT session_id FROM trajectories
                            WHERE started_at >= now64(6) - toIntervalSecond({window2:UInt32}))) AS open_sessions"""
# a reason's kind: the text before its first ':' with numbers as N ("unknown schema id N"), so one cause is one row
_KIND = "replaceRegexpAll(trim(BOTH ' ' FROM splitByChar(':', reason)[1]), '[0-9]+', 'N')"
_REASONS = f"""SELECT {_KIND} AS kind, count() AS letters, max(occurred_at) AS last_at, any(source_topic) AS topic
FROM dead_letters GROUP BY kind ORDER BY letters DESC, kind LIMIT 50"""
_LETTERS = f"""SELECT event_id, reason, source_topic, source_partition, source_offset, log_epoch, occurred_at,
       topic, partition, offset, length(raw) AS raw_bytes, substring(raw, 1, {{cut:UInt32}}) AS raw_head
FROM dead_letters WHERE {{kind:String}} = '' OR {_KIND} = {{kind:String}}
ORDER BY occurred_at DESC LIMIT {{n:UInt32}}"""

class LiveMonitor:
    def __init__(self, cfg: ArtConfig, store: UiStore) -> None:
        self.cfg = cfg
        self.store = store
        topics = cfg.kafka.topics()
        self.topic_names = [t.name for t in topics.all() + topics.internal()]
        self.roles = {topics.session_events.name: "in", topics.trajectories.name: "out", topics.judgments.name: "out",
                      topics.rewards.name: "out", topics.dead_letters.name: "dead"}
        self.groups = [f"{cfg.kafka.topic_prefix}sink", f"{cfg.kafka.topic_prefix}stream", "art-trainer"]
        self._probe: BrokerProbe | None = None
        self._history: deque[tuple[float, dict[str, int]]] = deque(maxlen=256)
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._lock = asyncio.Lock()

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last_at >= MIN_INTERVAL_S:
                self._last = await self._take()
                self._last_at = time.monotonic()
            return self._last

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.close()
            self._probe = None

    async def _take(self) -> dict[str, Any]:
        now = time.monotonic()
        window = int(max(3600.0, 4 * self.cfg.stream.session_idle_timeout_s))
        counts = await self.store.one(_COUNTS, {"window": window, "window2": 2 * window})
        open_sessions = int(counts.get("open_sessions", 0))
        reasons = await self.store.rows(_REASONS)
        broker, broker_error = await self._broker()
        totals = {f"store:{t}": int(counts.get(t, 0)) for t in TABLES}
        if broker is not None:
            totals |= {f"log:{t}": v for t, v in broker.highwaters.items()}
        else:
            self._history.clear()  # rates across a broker restart would be meaningless
        self._history.append((now, totals))
        rates = self._rates(now)
        stack = read_stack_info(self.cfg.storage.data_dir)
        topics = self.cfg.kafka.topics()
        se, tr, jd, rw, dl = (t.name for t in topics.all())
        return {
            "stack": None if stack is None else {"pid": stack.pid, "bootstrap": stack.bootstrap,
                                                 "log_epoch": stack.log_epoch, "started_at": stack.started_at,
                                                 "children": sorted(stack.children)},
            "broker_error": broker_error,
            "events_in": rates.get(f"log:{se}"),
            "events_out": rates.get("store:session_events"),
            "open_sessions": open_sessions,
            "open_window_s": window,
            "throughput": [
                {"name": name, "log_total": totals.get(f"log:{topic}"), "log_rate": rates.get(f"log:{topic}"),
                 "store_total": totals[f"store:{table}"], "store_rate": rates.get(f"store:{table}")}
                for name, topic, table in (("session events", se, "session_events"), ("steps", None, "steps"),
                                           ("trajectories", tr, "trajectories"), ("judgments", jd, "judgments"),
                                           ("rewards", rw, "rewards"), ("dead letters", dl, "dead_letters"))],
            "lag": [g.model_dump() for g in broker.groups] if broker else [],
            "max_lag": max((g.lag for g in broker.groups), default=0) if broker else None,
            "dead_letters": int(counts.get("dead_letters", 0)),
            "reasons": [{"kind": r["kind"], "letters": int(r["letters"]), "last_at": r["last_at"].isoformat(),
                         "topic": r["topic"]} for r in reasons],
            "sampled_at": time.time(),
        }

    def _rates(self, now: float) -> dict[str, float]:
        """Per key, (latest - oldest) / elapsed over the samples of the last ``WINDOW_S`` seconds."""
        recent = [(t, v) for t, v in self._history if now - t <= WINDOW_S + MIN_INTERVAL_S]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < 0.5:
            return {}
        (t0, first), (t1, last) = recent[0], recent[-1]
        return {k: max(0.0, (last[k] - first[k]) / (t1 - t0)) for k in last if k in first}

    async def _broker(self) -> tuple[BrokerSample | None, str | None]:
        bootstrap = self.cfg.kafka.bootstrap
        if not bootstrap:
            info = read_stack_info(self.cfg.storage.data_dir)
            bootstrap = info.bootstrap if info else ""
        if not bootstrap:
            await self.close()
            return None, "no stack is running (`art up`): the log's numbers need its broker"
        if self._probe is not None and self._probe.bootstrap != bootstrap:
            await self.close()
        if self._probe is None:
            self._probe = BrokerProbe(bootstrap)
        try:
            return await self._probe.sample(self.topic_names, self.groups), None
        except Exception as exc:  # a broker that is restarting or gone: show the store, say why
            await self.close()
            return None, f"broker {bootstrap} did not answer: {exc.__class__.__name__} {exc}".strip()


async def dead_letters(store: UiStore, kind: str, limit: int = 20, cut: int = 4096) -> list[dict[str, Any]]:
    """The latest dead letters (of one reason kind, or all), the raw record cut at ``cut`` bytes."""
    # (the cut bytes are not called raw: ClickHouse would measure that alias instead of the column)
    return await store.rows(_LETTERS, {"kind": kind, "n": limit, "cut": cut}, column_formats={"raw_head": "bytes"})
