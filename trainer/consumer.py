"""The trainer consumer: counts qualifying rewards from Kafka and starts training runs.

At-least-once and idempotent: the pending set holds session ids (a redelivered reward adds nothing),
it is written durably (temp file + fsync + rename) before the offsets are committed, so a kill at
any point neither loses nor double-counts a reward. Runs start as a child process, so polling (and
group membership) goes on while it trains; the run lock file guarantees one run at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from config.settings import ArtConfig
from schemas.codec import Codec
from schemas.errors import SchemaError
from schemas.models import RewardAssigned
from schemas.registry import registry_for
from trainer.runs import RunLock, lock_path

log = logging.getLogger(__name__)
Launcher = Callable[[ArtConfig], Any]
"""Starts a training run; returns an object with ``poll()`` (a Popen) or None when it ran inline."""


class TrainerState(BaseModel):
    pending: list[str] = Field(default_factory=list)
    last_run_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    runs_started: int = 0
    bad_messages: int = 0
    seen: int = 0


def state_path(art: ArtConfig) -> Path:
    return art.storage.data_dir / "trainer" / "consumer-state.json"


def load_state(path: Path) -> TrainerState:
    return TrainerState.model_validate_json(path.read_text()) if path.exists() else TrainerState()


def save_state(path: Path, state: TrainerState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(state.model_dump_json())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def count(state: TrainerState, reward: RewardAssigned, art: ArtConfig) -> bool:
    """Add the reward's session to the pending set when it qualifies; True when it was new."""
    state.seen += 1
    if reward.reward_version != art.judge.reward_version or reward.total < art.reward_threshold:
        return False
    if reward.session_id in state.pending:
        return False
    state.pending.append(reward.session_id)
    return True


def is_due(state: TrainerState, art: ArtConfig, now: datetime) -> bool:
    """Enough new qualifying runs, or the interval passed with at least one."""
    if len(state.pending) >= art.min_trajectories_for_training:
        return True
    return bool(state.pending) and (now - state.last_run_at).total_seconds() >= art.training_interval_s


def subprocess_launcher(config_path: Path | None) -> Launcher:
    """Run `python -m trainer train` as a child (same environment, so ART_* overrides carry over)."""

    def launch(art: ArtConfig) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "trainer", "train", "--no-progress"]
        if config_path is not None:
            cmd += ["--config", str(config_path)]
        log.info("starting training run: %s", " ".join(cmd))
        return subprocess.Popen(cmd)

    return launch


async def run_trainer_consumer(art: ArtConfig, *, bootstrap: str, group_id: str = "art-trainer",
                               config_path: Path | None = None, launch: Launcher | None = None,
                               stop: asyncio.Event | None = None, poll_ms: int = 1000) -> TrainerState:
    """Consume ``<prefix>rewards`` until ``stop`` is set; returns the last persisted state."""
    from aiokafka import AIOKafkaConsumer

    if not bootstrap:
        raise ValueError("no Kafka bootstrap: pass --bootstrap or set art.kafka.bootstrap (or run `art up`)")
    codec = Codec(registry_for(art.kafka.schema_registry_url, art.storage.data_dir))
    launch = launch or subprocess_launcher(config_path)
    stop = stop or asyncio.Event()
    path = state_path(art)
    state = load_state(path)
    lock = RunLock(lock_path(art))
    child: Any = None
    consumer = AIOKafkaConsumer(art.kafka.topics().rewards.name, bootstrap_servers=bootstrap, group_id=group_id,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=poll_ms, max_records=500)
            records = [r for rs in batches.values() for r in rs]
            for record in records:
                try:
                    count(state, codec.decode(record.value, expect=RewardAssigned), art)
                except SchemaError as exc:
                    state.bad_messages += 1
                    log.warning("skipping bad reward at %s[%d]@%d: %s", record.topic, record.partition,
                                record.offset, exc)
            if records:
                save_state(path, state)  # durable first ...
                await consumer.commit()  # ... then the offsets
            if child is not None and child.poll() is not None:
                child = None
            if child is None and lock.holder() is None and is_due(state, art, datetime.now(UTC)):
                log.info("%d new qualifying trajectories: training", len(state.pending))
                child = launch(art)
                state.pending, state.last_run_at = [], datetime.now(UTC)
                state.runs_started += 1
                save_state(path, state)
                if child is not None and not hasattr(child, "poll"):
                    child = None
    finally:
        await consumer.stop()
    return state
