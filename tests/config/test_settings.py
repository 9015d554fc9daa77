"""Configuration: file, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_config


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
    ({"ART_KAFKA_SESSION_PARTITIONS": "zero"}, "invalid config (defaults): art.kafka.session_partitions = 'zero' "
     "(from ART_KAFKA_SESSION_PARTITIONS): Input should be a valid integer, unable to parse string as an integer"),
    ({"ART_REWARD_THRESHOLD": "2"}, "invalid config (defaults): art.reward_threshold = '2' (from "
     "ART_REWARD_THRESHOLD): Input should be less than or equal to 1"),
    ({"ART_CLICKHOUSE_DATABASE": "bad-name"}, "invalid config (defaults): art.clickhouse.database = 'bad-name' "
     "(from ART_CLICKHOUSE_DATABASE): String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'"),
    ({"ART_JUDGE_WEIGHTS": "0.1,0.1,x,0.1,0.6"}, "invalid config (defaults): art.judge.weights.2 = 'x' (from "
     "ART_JUDGE_WEIGHTS): Input should be a valid number, unable to parse string as a number"),
    ({"ART_JUDGE_WEIGHTS": "0.5,0.5"}, "invalid config (defaults): art.judge.weights = ['0.5', '0.5'] (from "
     "ART_JUDGE_WEIGHTS): List should have at least 5 items after validation, not 2"),
    ({"ART_JUDGE_WEIGHTS": "[0.5,"}, "invalid config: ART_JUDGE_WEIGHTS = '[0.5,' is not valid JSON: "
     "Expecting value: line 1 column 6 (char 5)"),
    ({"ART_CAPTURE_PRICES": "m=1,2"}, "invalid config: ART_CAPTURE_PRICES = 'm=1,2': expected a JSON object, "
     'e.g. {"key": [1, 2]}'),
])
def test_invalid_values_name_the_key_and_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert str(info.value) == message


def test_a_file_value_is_not_blamed_on_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "art.toml"
    path.write_text("[art.judge]\nweights = [1, 2]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"ART_JUDGE_VERSION": "2"})
    assert str(info.value) == (f"invalid config ({path}): art.judge.weights = [1, 2]: List should have at least "
                               "5 items after validation, not 2")


def test_lists_and_tables_from_the_environment() -> None:
    cfg = load_config(environ={"ART_JUDGE_WEIGHTS": "0.1, 0.1,0.1,0.1,0.6",
                               "ART_CAPTURE_PRICES": '{"gpt-4o-mini": [0.15, 0.6]}'})
    assert cfg.judge.weights == [0.1, 0.1, 0.1, 0.1, 0.6]
    assert cfg.capture.prices == {"gpt-4o-mini": [0.15, 0.6]}
    assert load_config(environ={"ART_JUDGE_WEIGHTS": "[0.2, 0.2, 0.2, 0.2, 0.2]"}).judge.weights == [0.2] * 5


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


def test_the_training_table_takes_file_keys_and_art_training_variables(tmp_path: Path) -> None:
    path = tmp_path / "art.toml"
    path.write_text('[art]\ntraining_interval_s = 60.0\n[art.training]\nobjective = "awr"\nmax_steps = 12\n')
    cfg = load_config(path, environ={"ART_TRAINING_LEARNING_RATE": "0.001", "ART_TRAINING_INTERVAL_S": "30"})
    assert cfg.training == {"objective": "awr", "max_steps": 12, "learning_rate": "0.001"}
    assert cfg.training_interval_s == 30.0  # ART_TRAINING_INTERVAL_S stays the [art] key, not a table entry
