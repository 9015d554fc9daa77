"""Trainer fixtures: one tiny model per session, stores filled from synthetic events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from config.settings import ArtConfig, StorageConfig
from tests.trainer.rows import insert_runs
from trainer import synthetic


@pytest.fixture
def filled_store(store: Any) -> Any:
    """12 research groups x 4 runs, inserted twice (redelivery) so dedup is always exercised."""
    runs = synthetic.runs(12, 4, seed=3)
    insert_runs(store, runs)
    insert_runs(store, runs[:10])
    return store


@pytest.fixture
def art(tmp_path: Path, clickhouse_dsn: str, database: str) -> ArtConfig:
    cfg = ArtConfig(storage=StorageConfig(data_dir=tmp_path / "art-data"), reward_threshold=0.7)
    cfg.clickhouse.dsn = clickhouse_dsn
    cfg.clickhouse.database = database
    return cfg
