"""The `art` commands of the trainer, on the session's chDB store (same engine path, own database)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from stack.cli import build_app

pytestmark = pytest.mark.train
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


def test_import_stays_light() -> None:
    code = "import sys, trainer.cli, trainer.consumer; assert 'torch' not in sys.modules and 'peft' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_flags_come_from_config_metadata(app: typer.Typer) -> None:
    wide = CliRunner(env={"COLUMNS": "220", "TERMINAL_WIDTH": "220"})
    out = wide.invoke(app, ["train", "--help"]).output
    for flag in ("--learning-rate", "--groups-per-step", "--rollouts-per-group", "--early-stopping-patience",
                 "--lora-r", "--objective", "--dpo-beta", "--min-reward", "--since", "--resume"):
        assert flag in out
    assert "AdamW learning rate" in out
    assert "investigate" in wide.invoke(app, ["specialize", "--help"]).output


def test_train_then_models_list_show_promote(app: typer.Typer, filled_store: Any, clickhouse_dsn: str, database: str,
                                             tiny_model: Path, tmp_path: Path) -> None:
    env = {"ART_CLICKHOUSE_DSN": clickhouse_dsn, "ART_CLICKHOUSE_DATABASE": database,
           "ART_STORAGE_DATA_DIR": str(tmp_path / "data"), "ART_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("[art.training]\nlearning_rate = 0.005\nmax_steps = 50\n")
    runner = CliRunner(env=env)
    result = runner.invoke(app, ["specialize", "research", "--model-path", str(tiny_model), "--max-steps", "3",
                                 "--evaluation-interval", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert ", 3 steps" in result.output  # the flag beat [art.training] max_steps
    assert "`art eval m-" in result.output  # registered; promotion is by evaluated outcome
    listed = runner.invoke(app, ["models", "list"]).output
    assert listed.startswith("  m-") and "research" in listed and "success=-" in listed
    model_id = listed.split()[0]
    assert '"objective": "sft"' in runner.invoke(app, ["models", "show", model_id]).output
    used = json.loads((tmp_path / "data" / "models" / model_id / "config.json").read_text())
    assert (used["learning_rate"], used["max_steps"]) == (0.005, 3)  # [art.training], under the flag
    assert runner.invoke(app, ["models", "promote", model_id]).exit_code == 0
    assert runner.invoke(app, ["models", "list"]).output.startswith("* m-")
    missing = runner.invoke(app, ["models", "show", "nope"])
    assert missing.exit_code == 2 and missing.stderr == "error: no model nope in the registry\n", missing.output
    bad = runner.invoke(app, ["specialize", "cooking", "--model-path", str(tiny_model)])
    assert bad.exit_code == 2, bad.output
    assert bad.stderr.startswith("error: unknown specialization 'cooking': use one of "), bad.output
    (tmp_path / "none.toml").write_text('[art.training]\nobjective = "ppo"\n')
    wrong = runner.invoke(app, ["train", "--model-path", str(tiny_model)])
    assert (wrong.exit_code, wrong.stderr) == (2, "error: objective must be one of ('sft', 'dpo', 'awr'), not 'ppo'\n")


def test_building_and_loading_a_model_prints_no_progress_bars(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from trainer.tinymodel import build_tiny_model; "
            "from trainer.config import TrainingConfig; from trainer.train import load_policy; "
            f"p = build_tiny_model(Path({str(tmp_path / 'm')!r})); load_policy(TrainingConfig(model_path=str(p)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")  # no "Loading weights", no "Writing model shards"
