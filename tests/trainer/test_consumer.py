"""The trainer consumer on the real (embedded) broker: counts, dedup, durable state, commits, trigger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import ArtConfig
from schemas.codec import Codec
from schemas.models import RewardAssigned
from schemas.registry import registry_for
from schemas.topics import Topics
from trainer.consumer import TrainerState, count, is_due, load_state, run_trainer_consumer, state_path

pytestmark = pytest.mark.train


def _reward(session: str, total: float, version: str = "ruler-heuristic@1") -> RewardAssigned:
    return RewardAssigned(session_id=session, agent_name="a", group_id="g", reward_version=version, total=total,
                          success=1.0, efficiency=1.0, quality=total, novelty=0.5, confidence=0.9, advantage=0.0)


def test_count_and_trigger_rules() -> None:
    art = ArtConfig(min_trajectories_for_training=2, training_interval_s=60, reward_threshold=0.7)
    state = TrainerState()
    assert count(state, _reward("s1", 0.9), art)
    assert not count(state, _reward("s1", 0.9), art)  # redelivery
    assert not count(state, _reward("s2", 0.5), art)  # below threshold
    assert not count(state, _reward("s3", 0.9, "other@2"), art)  # other reward version
    now = datetime.now(UTC)
    assert not is_due(state, art, now)
    assert is_due(state, art, now + timedelta(seconds=61))  # interval passed with one pending
    count(state, _reward("s4", 0.8), art)
    assert is_due(state, art, now)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"k")
    finally:
        await producer.stop()


async def test_consumer_counts_commits_and_launches(kafka_bootstrap: str, topics: Topics, art: ArtConfig) -> None:
    art.kafka.topic_prefix = topics.prefix
    art.min_trajectories_for_training = 3
    codec = Codec(registry_for("", art.storage.data_dir))
    topic = topics.rewards.name
    good = [codec.encode(topic, _reward(f"s{i}", 0.9)) for i in range(3)]
    await _produce(kafka_bootstrap, topic, [good[0], good[0], codec.encode(topic, _reward("low", 0.1)),
                                            b"\x00garbage", good[1], good[2]])
    launched: list[int] = []
    stop = asyncio.Event()

    def launch(_: Any) -> None:
        launched.append(1)
        stop.set()

    state = await asyncio.wait_for(run_trainer_consumer(art, bootstrap=kafka_bootstrap, group_id=topics.prefix + "tr",
                                                        launch=launch, stop=stop, poll_ms=200), 90)
    assert launched == [1] and state.runs_started == 1 and state.pending == []
    assert state.bad_messages == 1 and state.seen == 5
    assert load_state(state_path(art)).runs_started == 1

    # Restart: committed offsets mean only the new rewards are read.
    await _produce(kafka_bootstrap, topic, [codec.encode(topic, _reward("s9", 0.95))])
    stop = asyncio.Event()
    task = asyncio.create_task(run_trainer_consumer(art, bootstrap=kafka_bootstrap, group_id=topics.prefix + "tr",
                                                    launch=launch, stop=stop, poll_ms=200))
    for _ in range(600):
        if load_state(state_path(art)).pending:
            break
        await asyncio.sleep(0.1)
    stop.set()
    state = await asyncio.wait_for(task, 30)
    assert state.pending == ["s9"] and state.seen == 6 and launched == [1]
