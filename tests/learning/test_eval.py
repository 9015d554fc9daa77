"""`art eval` on a running stack (real broker, real chDB, stream worker, sink) against a stand-in server:
its runs are judged and stored, the numbers are exact, and they never enter a training window."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agents.suite import SuiteMission, build_suite
from agents.tracking import Tracker
from learning.evaluation import wilson
from learning.judged import wait_for_rewards
from learning.rollouts import Planned, agent_config, run_planned
from schemas.transcript import TRAINING
from tests.ingest.stack import RunningStack
from tests.learning.support import StandIn, oracle, skip_write, wrong
from trainer.registry import get_model, register_base_model
from trainer.runs import open_store
from trainer.windows import WindowFilter, pull_window

pytestmark = pytest.mark.slow
BASE = "base-tiny"


def art(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_eval_is_judged_stored_exact_and_kept_out_of_training_windows(tmp_path: Path, tiny_model: Path) -> None:
    missions = build_suite("heldout", per_family=2) + build_suite("train", per_family=1)
    half = {"arith", "lookup"}  # the stand-in solves these two families, fails the other two
    # files: a wrong answer; chain: the right answer without writing the file, which is no success either

    def policy(m: SuiteMission, step: int) -> str:
        return oracle(m, step) if m.family in half else skip_write(m, step) if m.family == "chain" else wrong(m, step)

    with StandIn(missions, lambda model: policy) as server, RunningStack(tmp_path / "data") as stack:
        cfg = stack.cfg
        client = open_store(cfg)
        register_base_model(client, model_id=BASE, name="tiny", path=tiny_model)
        env = {**stack.env, "ART_LEARNING_EVAL_PER_FAMILY": "2"}
        out = art("eval", "base", "--base-url", server.base_url, "--no-promote", env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{BASE}: task success 0.500 (4/8, 95% CI" in out.stdout
        assert "per family: arith 1.00, lookup 1.00, files 0.00, chain 0.00" in out.stdout

        shown = art("models", "show", BASE, env=env, cwd=tmp_path)
        assert shown.returncode == 0 and "task success 0.500 (95% CI" in shown.stdout
        assert "on 8 held-out missions" in shown.stdout and '"eval_success": 0.5' in shown.stdout
        record = get_model(client, BASE)
        lo, hi = wilson(4, 8)
        assert record.metrics["eval_success"] == 0.5 and record.metrics["eval_missions"] == 8.0
        assert (record.metrics["eval_success_lo"], record.metrics["eval_success_hi"]) == (lo, hi)
        assert record.metrics["eval_success_files"] == 0.0 and record.metrics["eval_tokens_per_s"] > 0
        assert record.metrics["eval_steps"] == (2 + 3 + 1 + 3) * 2 / 8  # oracle arith 2, lookup 3; wrong 1; chain 3
        evals = client.query("SELECT model_id, missions, successes, length(session_ids) FROM evaluations FINAL"
                             ).result_rows
        assert evals == [(BASE, 8, 4, 8)]
        eval_ids = client.query("SELECT session_ids FROM evaluations FINAL").result_rows[0][0]
        success = dict(client.query("SELECT session_id, success FROM rewards FINAL WHERE session_id IN {ids:Array("
                                    "String)}", parameters={"ids": eval_ids}).result_rows)
        # the judge agrees with the exact check: answering the chain task without its file is half of it
        assert sorted(success.values()) == [0.0] * 2 + [0.5] * 2 + [1.0] * 4

        async def training_runs() -> list[str]:
            train = [m for m in missions if m.split == "train"]
            plan = [Planned(mission=m, group_id=f"g-{m.name}", index=k) for m in train for k in range(4)]
            async with Tracker.from_config(cfg) as tracker:
                done = await run_planned(plan, _client(server.base_url), tracker, agent=agent_config(BASE, 1.0, 32),
                                         run_kind=TRAINING, work_dir=tmp_path / "runs", concurrency=8)
                await tracker.flush()
            return [o.session_id for o in done]

        train_ids = asyncio.run(training_runs())
        wait_for_rewards(client, train_ids, cfg.judge.reward_version, 120)
        flt = WindowFilter(reward_version=cfg.judge.reward_version)
        assert sorted(t.session_id for t in pull_window(client, flt, record=False).trajectories) == sorted(train_ids)
        everything = pull_window(client, flt.model_copy(update={"include_evaluation": True}), record=False)
        assert len(everything.trajectories) == len(train_ids) + len(eval_ids) == 16 + 8
        own = pull_window(client, flt.model_copy(update={"models": [BASE], "min_success": 1.0}), record=False)
        assert len(own.trajectories) == 8 and {t.model for t in own.trajectories} == {BASE}
        assert not pull_window(client, flt.model_copy(update={"models": ["someone-else"]}), record=False).trajectories


def _client(base_url: str):  # type: ignore[no-untyped-def]
    from agents.llm import OpenAIChatClient

    return OpenAIChatClient(base_url, BASE)
