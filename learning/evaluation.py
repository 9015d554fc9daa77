"""`art eval`: a served model on the held-out suite, through the pipeline, into the registry.

Why these numbers: task completion (the suite's exact check) is what promotion compares, so it
comes with a 95% Wilson interval — 48 missions cannot tell 0.50 from 0.55, and the reader should
see that. Mean reward, efficiency and steps come from the stored RULER rewards of the same runs;
tokens/s is completion tokens over the wall time of the evaluation at its concurrency (what the
server delivered to these agents, not a micro-benchmark). Runs are greedy (temperature 0), so an
evaluation measures the policy, not the dice, and are labelled ``run_kind=evaluation``, which keeps
them out of every training window.
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from agents.llm import ChatClient
from agents.recording import SessionOpener
from agents.suite import SuiteMission
from learning.judged import Judged, wait_for_rewards
from learning.rollouts import Outcome, Planned, agent_config, run_planned
from schemas.transcript import EVALUATION
from trainer.registry import CHAMPION_METRIC, SIZE_METRIC, record_metrics

SUITE = "builtin@1"
Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sane at 0/n and n/n, unlike the normal one).

    >>> [round(x, 3) for x in wilson(0, 48)]
    [0.0, 0.074]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class EvalReport(BaseModel):
    eval_id: str
    model_id: str
    split: str = "heldout"
    suite: str = SUITE
    missions: int
    successes: int
    success: float
    success_lo: float
    success_hi: float
    reward: float
    reward_ci: float
    efficiency: float
    steps: float
    tokens_per_s: float
    seconds: float
    errors: int = 0
    per_family: dict[str, float] = Field(default_factory=dict)
    session_ids: list[str] = Field(default_factory=list)
    loop_id: str = ""
    round: int = 0

    def metrics(self) -> dict[str, float]:
        """What the registry row keeps (``eval_success`` is what promotion compares)."""
        return {CHAMPION_METRIC: self.success, "eval_success_lo": self.success_lo, "eval_success_hi": self.success_hi,
                SIZE_METRIC: float(self.missions), "eval_reward": self.reward, "eval_reward_ci": self.reward_ci,
                "eval_efficiency": self.efficiency, "eval_steps": self.steps, "eval_tokens_per_s": self.tokens_per_s,
                "eval_errors": float(self.errors),
                **{f"eval_success_{f}": v for f, v in self.per_family.items()}}

    def lines(self) -> list[str]:
        fam = ", ".join(f"{f} {v:.2f}" for f, v in self.per_family.items())
        return [f"{self.model_id}: task success {self.success:.3f} ({self.successes}/{self.missions}, 95% CI "
                f"{self.success_lo:.3f}-{self.success_hi:.3f})",
                f"  mean reward {self.reward:.3f} ± {self.reward_ci:.3f}, efficiency {self.efficiency:.3f}, "
                f"steps {self.steps:.2f}, {self.tokens_per_s:.1f} tokens/s, {self.seconds:.0f} s"
                + (f", {self.errors} runs ended by an LLM error" if self.errors else ""),
                f"  per family: {fam}"]


def summarize(model_id: str, outcomes: Sequence[Outcome], judged: dict[str, Judged], seconds: float) -> EvalReport:
    n = len(outcomes)
    k = sum(o.success for o in outcomes)
    lo, hi = wilson(k, n)
    rewards = [judged[o.session_id].total for o in outcomes if o.session_id in judged]
    spread = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
    families: dict[str, list[bool]] = {}
    for o in outcomes:
        families.setdefault(o.family, []).append(o.success)
    return EvalReport(
        eval_id=f"e-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}", model_id=model_id, missions=n,
        successes=k, success=k / n if n else 0.0, success_lo=lo, success_hi=hi,
        reward=statistics.fmean(rewards) if rewards else 0.0,
        reward_ci=Z95 * spread / math.sqrt(len(rewards)) if rewards else 0.0,
        efficiency=statistics.fmean(judged[o.session_id].efficiency for o in outcomes) if rewards else 0.0,
        steps=statistics.fmean(o.steps for o in outcomes) if n else 0.0,
        tokens_per_s=sum(o.completion_tokens for o in outcomes) / seconds if seconds > 0 else 0.0,
        seconds=seconds, errors=sum(1 for o in outcomes if o.status == "error"),
        per_family={f: sum(v) / len(v) for f, v in families.items()},
        session_ids=[o.session_id for o in outcomes])


def store_report(client: Client, report: EvalReport, started_at: datetime) -> None:
    """The registry row's metrics, and one ``evaluations`` row."""
    record_metrics(client, report.model_id, report.metrics())
    client.insert("evaluations", [[report.eval_id, report.model_id, report.split, report.suite, report.missions,
                                   report.successes, report.metrics(), report.session_ids, report.loop_id,
                                   report.round, started_at, datetime.now(UTC)]],
                  column_names=["eval_id", "model_id", "split", "suite", "missions", "successes", "metrics",
                                "session_ids", "loop_id", "round", "started_at", "finished_at"])


class EvalSettings(BaseModel):
    max_tokens: int
    concurrency: int
    reward_version: str
    wait_s: float


async def evaluate(model_id: str, missions: Sequence[SuiteMission], llm: ChatClient, opener: SessionOpener,
                   client: Client, settings: EvalSettings, work_dir: Path, *, flush: Callable[[], Any] | None = None,
                   on_run: Callable[[Outcome], None] | None = None,
                   on_wait: Callable[[int, int], None] | None = None, loop_id: str = "",
                   round_: int = 0) -> EvalReport:
    """Run ``missions`` greedily against ``model_id``, wait for their rewards, store and return the report."""
    import asyncio

    started_at = datetime.now(UTC)
    started = time.monotonic()
    outcomes = await run_planned([Planned(mission=m) for m in missions], llm, opener,
                                 agent=agent_config(model_id, 0.0, settings.max_tokens), run_kind=EVALUATION,
                                 work_dir=work_dir, concurrency=settings.concurrency, on_done=on_run)
    seconds = time.monotonic() - started
    if flush is not None:
        await flush()
    judged = await asyncio.to_thread(wait_for_rewards, client, [o.session_id for o in outcomes],
                                     settings.reward_version, settings.wait_s, on_wait)
    report = summarize(model_id, outcomes, judged, seconds).model_copy(update={"loop_id": loop_id, "round": round_})
    store_report(client, report, started_at)
    return report
