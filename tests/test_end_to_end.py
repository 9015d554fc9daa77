"""What a user types: `art run MISSION.yaml` into a running stack, and `art demo` from nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.support import ChatServer
from tests.agents.test_runner import decision
from tests.ingest.helpers import wait_for
from tests.ingest.stack import RunningStack

pytestmark = pytest.mark.slow


def art(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_art_run_mission_lands_in_clickhouse(tmp_path: Path) -> None:
    (tmp_path / "mission.yaml").write_text(
        "name: multiplier\nobjective: Compute 17 * 23\nagent_config: {max_iterations: 4, model: m}\n"
        "tools: [{name: calculator}]\nsuccess_criteria: ['391']\n")
    with ChatServer() as chat, RunningStack(tmp_path / "data") as stack:
        chat.script("think", "Multiply with the calculator.", "Done.")
        chat.script("decide", decision("use_tool", "17*23", tool="calculator"), decision("answer", "391"))
        env = {**stack.env, "ART_MODELS_LLM_BASE_URL": chat.base_url, "ART_MODELS_LLM_MODEL": "m"}
        out = art("run", "mission.yaml", "--no-patterns", env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        client = stack.client()
        row = wait_for(lambda: client.query(
            "SELECT agent_name, objective, step_count, status, final_answer, tools_used, total_tokens "
            "FROM trajectories WHERE agent_name = 'multiplier'").result_rows, timeout_s=60)
        assert row == [("multiplier", "Compute 17 * 23", 2, "succeeded", "391", ["calculator"], 60)]
        steps = client.query("SELECT seq, action_kind, tool, action_text, tool_result FROM steps "
                             "WHERE agent_name = 'multiplier' ORDER BY seq").result_rows
        assert steps == [(1, "use_tool", "calculator", "17*23", "391"), (2, "answer", "", "391", None)]


def test_demo_end_to_end_rows_are_really_stored(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ART_")}
    out = art("demo", "--groups", "2", "--rollouts", "4", "--no-train", "--no-real", "--timeout", "120", env=env,
              cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Total trajectories: 8" in out.stdout and "Example query" in out.stdout
    # the stack is gone now: `art sql` opens the store directly and sees the same rows
    q = art("sql", "SELECT (SELECT count() FROM trajectories) AS t, (SELECT count() FROM rewards FINAL) AS r, "
                   "(SELECT count(DISTINCT agent_name) FROM rewards) AS agents, "
                   "(SELECT uniqExact(round(total, 6)) FROM rewards FINAL) AS distinct_rewards", "--format", "json",
            env=env, cwd=tmp_path)
    assert q.returncode == 0, q.stdout + q.stderr
    result = json.loads(q.stdout.strip().splitlines()[-1])
    assert result["t"] == 8 and result["r"] == 8 and result["agents"] == 4
    assert result["distinct_rewards"] > 1  # policies of different quality get different rewards
    stored = art("sql", "SELECT count() AS n FROM success_patterns FINAL WHERE reward >= 0.7", "--format", "json",
                 env=env, cwd=tmp_path)
    n_patterns = json.loads(stored.stdout.strip().splitlines()[-1])["n"]
    assert n_patterns > 0 and f"success patterns stored for future agents: {n_patterns}" in out.stdout
    found = art("patterns", "find", "Compute 10 * 20 + 3 and answer with the number.", env=env, cwd=tmp_path)
    assert found.returncode == 0 and "calculator:" in found.stdout
