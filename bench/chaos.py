"""`art bench chaos`: an operator's bad day, measured. Agents in many processes stream sessions into
`art up` while worker, sink, broker or the whole stack are killed -9 at random moments; then poison
records of every kind are mixed with good sessions.

Counted in ClickHouse at the end, against what the agents sent: ``lost`` (events, steps,
trajectories, judgments or rewards missing or incomplete) and ``duplicated`` (rows beyond one per
key); ``dead_letters`` against ``bad_sent``. ``recovery_s``: per kill, seconds from the kill until a
probe session sent right after it is queryable as a trajectory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.poison import Poisoner, Record, good_session
from config.settings import load_config
from schemas.codec import Codec
from schemas.registry import registry_for
from stack.launcher import StackProcess

TARGETS = ("worker-0", "sink-0", "broker", "stack")
GROUP = 4


def _agents(data_dir: str, plan: list[tuple[str, float, int]], start_at: float, out: str) -> None:
    """One agent process: its sessions (id, start offset, steps), each step 0.5 s apart."""
    from agents.tracking import Tracker
    from schemas.models import SessionStatus, UseTool

    cfg = load_config(environ={"ART_STORAGE_DATA_DIR": data_dir})
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its reconnect errors would drown the progress

    async def one(tracker: Tracker, session_id: str, offset: float, steps: int) -> None:
        await asyncio.sleep(max(0.0, start_at + offset - time.time()))
        group = f"chaos-g{int(session_id.rsplit('-', 1)[1]) // GROUP}"
        session = await tracker.start_session(agent_name=f"chaos-{steps % 5}", objective=f"chaos {session_id}",
                                              group_id=group, model="chaos", session_id=session_id)
        for s in range(steps):
            await session.record_step(observation=f"observation {s}", thought="thinking",
                                      action=UseTool(tool=f"tool{s % 3}", input=str(s)), tokens=s, cost=0.001)
            await asyncio.sleep(0.5)
        await session.complete("done", SessionStatus.succeeded)

    async def main() -> None:
        async with Tracker.from_config(cfg, retry_interval_s=0.3) as tracker:
            await asyncio.gather(*(one(tracker, *p) for p in plan))
            durable = await tracker.wait_durable(timeout_s=300)
            Path(out).write_text(json.dumps({"durable": durable, "resent": tracker.resent,
                                             "spooled": tracker.spooled}))

    asyncio.run(main())


class Chaos:
    def __init__(self, sessions: int, kills: int, fuzz: int, processes: int, seed: int,
                 progress: Callable[[str], None]) -> None:
        self.sessions, self.kills, self.fuzz, self.processes = sessions, kills, fuzz, processes
        self.rng = random.Random(seed)
        self.say = progress
        self.root = Path(tempfile.mkdtemp(prefix="art-chaos-"))
        self.stack = StackProcess(self.root / "data", env={
            "ART_STREAM_GAP_TIMEOUT_S": "5", "ART_JUDGE_GROUP_WINDOW_S": "20"})
        self.expected: dict[str, int] = {}  # session id -> steps
        self.recovery: list[dict[str, Any]] = []

    @property
    def cfg(self) -> Any:
        return self.stack.cfg

    def client(self) -> Any:
        return self.stack.client()

    def count(self, sql: str, **params: Any) -> Any:
        return self.client().query(sql, parameters=params).result_rows[0][0]

    # --- phase 1: a fleet under kills -----------------------------------------------------

    def fleet(self) -> dict[str, Any]:
        window = max(60.0, 18.0 * self.kills)  # sessions start throughout the kills
        plan: list[list[tuple[str, float, int]]] = [[] for _ in range(self.processes)]
        for i in range(self.sessions):
            sid, steps = f"chaos-{self.rng.getrandbits(32):08x}-{i}", self.rng.randint(10, 30)
            self.expected[sid] = steps
            plan[i % self.processes].append((sid, self.rng.uniform(0, window), steps))
        start_at = time.time() + 5.0
        ctx = mp.get_context("spawn")
        outs = [str(self.root / f"agents-{n}.json") for n in range(self.processes)]
        procs = [ctx.Process(target=_agents, args=(str(self.stack.data_dir), plan[n], start_at, outs[n]))
                 for n in range(self.processes)]
        for p in procs:
            p.start()
        self.say(f"{self.processes} agent processes, {self.sessions} sessions over {window:.0f} s")
        time.sleep(max(0.0, start_at - time.time()) + 5.0)
        targets = ["stack", "stack", *self.rng.choices(TARGETS, k=max(0, self.kills - 2))][:self.kills]
        self.rng.shuffle(targets)
        for n, target in enumerate(targets, 1):
            time.sleep(self.rng.uniform(1.0, 6.0))
            seconds = self.kill(target)
            self.recovery.append({"target": target, "recovery_s": round(seconds, 2)})
            self.say(f"kill {n}/{len(targets)}: {target} -9, recovered in {seconds:.1f} s")
        deadline = time.monotonic() + 900
        for p in procs:
            p.join(max(1.0, deadline - time.monotonic()))
            if p.is_alive():  # it wrote its result (or not: counted as not durable) but hangs on exit
                p.terminate()
        agents = [json.loads(Path(o).read_text()) if Path(o).exists() else {"durable": False} for o in outs]
        return {"agents_durable": sum(a["durable"] for a in agents), "agents": len(agents),
                "resent": sum(a.get("resent", 0) for a in agents),
                "spool_left": len(list((self.stack.data_dir / "spool").glob("*.spool")))}

    def kill(self, target: str) -> float:
        """Kill ``target`` -9 (restart the whole stack if that was it); seconds until a probe session lands."""
        start = time.monotonic()
        if target == "stack":
            self.stack.kill()
            self.stack.start(timeout_s=120)
        else:
            os.kill(self.stack.info.children[target], signal.SIGKILL)
        sid = f"probe-{self.rng.getrandbits(32):08x}-{len(self.recovery)}"
        self.expected[sid] = 1
        asyncio.run(self.probe(sid))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if self.count("SELECT count() FROM trajectories WHERE session_id = {s:String}", s=sid):
                    break
            except Exception:
                pass  # the store is on its way back
            time.sleep(0.2)
        return time.monotonic() - start

    async def probe(self, session_id: str) -> None:
        from agents.tracking import Tracker
        from schemas.models import SessionStatus, UseTool

        tracker = Tracker.from_config(self.cfg, retry_interval_s=0.2)
        await tracker.start()
        session = await tracker.start_session(agent_name="probe", objective="are you back?",
                                              session_id=session_id, group_id=None)
        await session.record_step(observation="o", thought="t", action=UseTool(tool="calc", input="0"), tokens=0)
        await session.complete("yes", SessionStatus.succeeded)
        await tracker.close(timeout_s=300)  # until the store has it

    # --- phase 2: poison among good sessions ------------------------------------------------

    def poison(self) -> int:
        codec = Codec(registry_for("", self.stack.data_dir))
        topic = self.cfg.kafka.topics().session_events.name
        good = [good_session(f"fuzz-good-{self.rng.getrandbits(32):08x}-{i}", 5) for i in range(20)]
        for events in good:
            self.expected[events[0].session_id] = 5
        poisoner = Poisoner(codec, topic, self.rng, sent=good[:10])
        mixed: list[Record] = [r for _, r in poisoner.mix(self.fuzz)]
        for events in good[10:]:
            records = [(e.session_id.encode(), codec.encode(topic, e)) for e in events]
            places = sorted(self.rng.sample(range(len(mixed) + len(records)), len(records)))
            for place, record in zip(places, records, strict=True):
                mixed.insert(place, record)
        first = [(e.session_id.encode(), codec.encode(topic, e)) for events in good[:10] for e in events]
        asyncio.run(self.produce(first + mixed))
        self.say(f"sent {self.fuzz} poison records among 20 good sessions")
        return self.fuzz

    async def produce(self, records: list[Record]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.info.bootstrap, max_request_size=4 * 1024 * 1024,
                                    linger_ms=20, acks="all")
        await producer.start()
        try:
            topic = self.cfg.kafka.topics().session_events.name
            futures = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    # --- the count ------------------------------------------------------------------------

    def tally(self, bad_sent: int, timeout_s: float = 300.0) -> dict[str, Any]:
        ids = list(self.expected)
        topic = self.cfg.kafka.topics().session_events.name
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.count("SELECT uniqExact(session_id) FROM rewards WHERE session_id IN {ids:Array(String)}",
                              ids=ids)
            letters = self.count("SELECT uniqExact(event_id) FROM dead_letters WHERE source_topic = {t:String}",
                                 t=topic)
            self.say(f"rewarded sessions {done}/{len(ids)}, dead letters {letters}/{bad_sent}")
            if done >= len(ids) and letters >= bad_sent:
                break
            time.sleep(3.0)
        time.sleep(3.0)  # a late duplicate would land now
        params = {"ids": ids}
        client = self.client()
        rows = lambda sql: client.query(sql, parameters=params).result_rows  # noqa: E731
        events = dict(rows("SELECT session_id, uniqExact(seq) FROM session_events WHERE session_id IN "
                           "{ids:Array(String)} GROUP BY session_id"))
        steps = dict(rows("SELECT session_id, uniqExact(seq) FROM steps WHERE session_id IN {ids:Array(String)} "
                          "GROUP BY session_id"))
        complete = {r[0] for r in rows("SELECT session_id, step_count FROM trajectories WHERE session_id IN "
                                       "{ids:Array(String)} AND closed_by = 'completed' AND missing_seqs = []")
                    if r[1] == self.expected[r[0]]}
        judged = {r[0] for r in rows("SELECT DISTINCT session_id FROM judgments WHERE session_id IN "
                                     "{ids:Array(String)}")}
        rewarded = {r[0] for r in rows("SELECT DISTINCT session_id FROM rewards WHERE session_id IN "
                                       "{ids:Array(String)}")}
        lost = {
            "events": sum(n + 2 - events.get(s, 0) for s, n in self.expected.items()),
            "steps": sum(n - steps.get(s, 0) for s, n in self.expected.items()),
            "trajectories": len(ids) - len(complete), "judgments": len(ids) - len(judged),
            "rewards": len(ids) - len(rewarded)}
        duplicated = {table: rows(f"SELECT count() - uniqExact({key}) FROM {table} WHERE session_id IN "
                                  "{ids:Array(String)}")[0][0]
                      for table, key in (("session_events", "session_id, seq"), ("steps", "session_id, seq"),
                                         ("trajectories", "session_id"), ("judgments", "session_id"),
                                         ("rewards", "session_id"))}
        dead = client.query("SELECT count(), uniqExact(event_id) FROM dead_letters WHERE source_topic = {t:String}",
                            parameters={"t": topic}).result_rows[0]
        return {"lost": sum(lost.values()), "duplicated": sum(duplicated.values()) + dead[0] - dead[1],
                "dead_letters": dead[1], "lost_by_kind": lost, "duplicated_by_table": duplicated}

    def run(self) -> dict[str, Any]:
        begin = time.monotonic()
        self.stack.start(timeout_s=120)
        try:
            self.say(f"stack up in {self.stack.data_dir}")
            fleet = self.fleet()
            bad_sent = self.poison()
            counted = self.tally(bad_sent)
        finally:
            if self.stack.proc is not None and self.stack.proc.poll() is None:
                self.stack.stop()
        return {"sessions": self.sessions, "probes": len(self.recovery), "lost": counted["lost"],
                "duplicated": counted["duplicated"], "bad_sent": bad_sent, "dead_letters": counted["dead_letters"],
                "kills": len(self.recovery), "recovery_s": [r["recovery_s"] for r in self.recovery],
                "killed": [r["target"] for r in self.recovery], "lost_by_kind": counted["lost_by_kind"],
                "duplicated_by_table": counted["duplicated_by_table"], **fleet,
                "wall_s": round(time.monotonic() - begin, 1), "cpus": os.cpu_count()}


def run(sessions: int = 200, kills: int = 10, fuzz: int = 10_000, processes: int = 20, seed: int = 1,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    return Chaos(sessions, kills, fuzz, processes, seed, progress).run()
