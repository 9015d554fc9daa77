"""Configuration: file, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.settings import load_config


def test_file_then_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "art.toml"
    path.write_text('[art]\nmin_trajectories_for_training = 7\n[art.kafka]\nbootstrap = "file:1"\n'
                    'session_partitions = 3\n[art.storage]\ndata_dir = "/data"\n')
    cfg = load_config(path, environ={"ART_KAFKA_BOOTSTRAP": "env:2", "ART_REWARD_THRESHOLD": "0.5",
                                     "ART_CLICKHOUSE_DSN": "http://ch:8123"})
    assert (cfg.kafka.bootstrap, cfg.kafka.session_partitions) == ("env:2", 3)
    assert (cfg.min_trajectories_for_training, cfg.reward_threshold) == (7, 0.5)
    assert cfg.clickhouse_dsn() == "http://ch:8123"
    assert cfg.storage.resolved_models_dir() == Path("/data/models")


def test_defaults_put_chdb_in_the_data_dir() -> None:
    cfg = load_config(environ={"ART_STORAGE_DATA_DIR": "/tmp/x"})
    assert cfg.clickhouse_dsn() == "chdb:///tmp/x/clickhouse"
    assert cfg.kafka.topics().session_events.name == "art.session-events"


@pytest.mark.parametrize(("env", "message"), [
    ({"ART_KAFKA_SESSION_PARTITIONS": "zero"},
     "art.kafka.session_partitions = 'zero': Input should be a valid integer"),
    ({"ART_REWARD_THRESHOLD": "2"}, "art.reward_threshold = '2': Input should be less than or equal to 1"),
    ({"ART_CLICKHOUSE_DATABASE": "bad-name"}, "art.clickhouse.database = 'bad-name': String should match pattern"),
])
def test_invalid_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert message in str(info.value)


def test_unknown_key_and_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "art.toml"
    path.write_text("[art.kafka]\nbootstrapp = 'x'\n")
    with pytest.raises(ConfigError, match=r"art\.kafka\.bootstrapp = 'x': Extra inputs are not permitted"):
        load_config(path, environ={})
    path.write_text("[art\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})
