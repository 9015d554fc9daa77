"""`art bench loop`: does the real model get better from its own runs? Base vs champion on held-out.

A fresh data dir, the embedded stack, SmolLM2 served by a child `art serve`, then `art loop` for at
most ``rounds`` rounds with ``teacher=self`` (only the model's own lineage: no demonstrations), and no
round starts that would end past ``budget_s`` of loop time (judged by the last round's duration), so
a slow or shared machine gets fewer rounds, and still the JSON line.
The baseline is measured in the same run: round 0 evaluates the base on the same held-out missions
the champion is scored on. ``seconds`` is the loop itself (base evaluation and every round), not the
one-off setup (stack start, model conversion, server load), which ``setup_seconds`` reports. Then the
marked slow test (one real round) runs unless ``--no-slow-test``. Last line: one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLOW_TEST = "tests/learning/test_real_round.py"


def base_model_dir(models_dir: Path, say: Callable[[str], None]) -> Path:
    """The converted SmolLM2 under ``models_dir`` (converted now if needed, once)."""
    from trainer.basemodel import BASE_ID, convert_gguf, gguf_path

    return convert_gguf(gguf_path(), models_dir / BASE_ID, say)


def family_table(base: Any, champion: Any) -> list[str]:
    out = [f"{'family':8} {'base':>6} {'champion':>9}"]
    for f in base.per_family:
        out.append(f"{f:8} {base.per_family[f]:6.2f} {champion.per_family.get(f, 0.0):9.2f}")
    out.append(f"{'all':8} {base.success:6.2f} {champion.success:9.2f}")
    return out


def run_slow_test(env: dict[str, str], say: Callable[[str], None]) -> str:
    """The marked real-model test, in its own pytest process: 'passed', 'failed' or 'skipped'."""
    say(f"running the slow test {SLOW_TEST} (one real round on SmolLM2) …")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SLOW_TEST],
                          cwd=ROOT, env={**env, "ART_REAL_MODEL_TESTS": "1"}, capture_output=True, text=True,
                          timeout=3600)
    say(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:])
    if proc.returncode == 0:
        return "skipped" if " skipped" in proc.stdout and " passed" not in proc.stdout else "passed"
    return "failed"


def bench_loop(*, rounds: int, groups: int | None, per_family: int | None, objective: str | None,
               data_dir: Path | None, models_dir: Path | None, slow_test: bool, budget_s: float | None,
               say: Callable[[str], None]) -> dict[str, Any]:
    from config.settings import LearningConfig, load_config
    from learning.cli import run_loop
    from learning.loop import LoopSettings
    from stack.supervisor import Stack
    from trainer.basemodel import register_base
    from trainer.runs import open_store

    started = time.monotonic()
    models_dir = models_dir or load_config().storage.resolved_models_dir()
    base = base_model_dir(models_dir, say)
    work = data_dir or Path(tempfile.mkdtemp(prefix="art-bench-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "art.toml").write_text("[art]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ART_")}
    env |= {"ART_CONFIG": str(work / "art.toml"), "ART_STORAGE_DATA_DIR": str(work / "data"),
            "ART_MODELS_BASE_MODEL": str(base)}
    # a run silent for one slow LLM call must not be closed as idle (learning.session.idle_timeout_warning)
    env["ART_STREAM_SESSION_IDLE_TIMEOUT_S"] = str(LearningConfig().request_timeout_s + 60)
    for key in [k for k in os.environ if k.startswith("ART_")]:
        del os.environ[key]
    os.environ.update(env)  # the stack's children and `art serve` read the same configuration
    art = load_config()
    say(f"bench data dir {work}; base model {base}")
    stack = Stack(art)
    stack.start()
    try:
        register_base(open_store(art), base)
        settings = LoopSettings.from_config(art, rounds=rounds, groups=groups, eval_per_family=per_family,
                                            objective=objective, teacher="self", budget_s=budget_s)
        setup = time.monotonic() - started
        result = asyncio.run(run_loop(art, None, None, settings, say=say))
    finally:
        stack.stop()
    for line in result.table():
        say(line)
    for line in family_table(result.base_eval, result.champion_eval):
        say(line)
    test = run_slow_test(env | {"ART_REAL_MODEL_DIR": str(base)}, say) if slow_test else "not run"
    return {"base_success": round(result.base_eval.success, 4),
            "champion_success": round(result.champion_eval.success, 4),
            "gain": round(result.champion_eval.success - result.base_eval.success, 4), "rounds": len(result.rounds),
            "seconds": round(result.seconds, 1), "budget_s": budget_s, "setup_seconds": round(setup, 1),
            "missions": result.base_eval.missions, "families": len(result.base_eval.per_family),
            "demonstrations": sum(r.fleet_examples for r in result.rounds), "objective": result.objective,
            "champion": result.champion, "own_runs": sum(r.runs for r in result.rounds),
            "base_per_family": result.base_eval.per_family, "champion_per_family": result.champion_eval.per_family,
            "promotions": sum(1 for r in result.rounds if r.decision and r.decision.promoted),
            "slow_test": test}
