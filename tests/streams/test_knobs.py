"""The stream's batch sizes, waits, repair delay, scan interval and judge concurrency come from
``[art.stream]`` (environment included), not from constants in the processors."""

from __future__ import annotations

from pathlib import Path

from config.settings import load_config
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.app import create_app
from streams.judging import JudgingProcessor
from streams.sessions import SessionProcessor


async def test_processors_read_their_knobs_from_the_config(tmp_path: Path) -> None:
    cfg = load_config(environ={"ART_STREAM_REPAIR_AFTER_S": "7.5", "ART_STREAM_FULL_SCAN_INTERVAL_S": "90",
                               "ART_STREAM_JUDGE_CONCURRENCY": "3", "ART_STORAGE_DATA_DIR": str(tmp_path)})
    app = create_app(cfg, "127.0.0.1:9", 6066)  # built, never started: nothing listens or connects
    codec = Codec(LocalRegistry())
    sessions = SessionProcessor(app, cfg, codec, None)
    judging = JudgingProcessor(app, cfg, codec)
    assert (sessions.repair_after_s, sessions.full_scan_interval_s) == (7.5, 90.0)
    assert judging._limit._value == 3
    other = create_app(cfg, "127.0.0.1:9", 6067)
    assert SessionProcessor(other, cfg, codec, None, repair_after_s=0.5).repair_after_s == 0.5  # an explicit value wins
    defaults = load_config(environ={})
    assert (defaults.stream.fold_batch, defaults.stream.judge_batch, defaults.sink.batch_records) == (5000, 500, 20000)
