"""`art loop`: rounds of run -> judge -> train -> evaluate -> promote, on the served champion.

One round: the champion (resolved to its model id, so a promotion mid-round cannot mix policies)
runs ``groups`` training missions, each as a group of ``judge.rollouts_per_group`` sampled runs; the
pipeline judges them and RULER scores each group; the trainer trains on the reward-filtered window
(own runs only unless ``teacher=fleet``): from the base, a fresh LoRA adapter on this loop's runs;
from an adapter champion, that adapter continued on the runs sampled from it (``round_training``).
The candidate is evaluated on the held-out suite through the server and promoted only when its task
success beats the champion's by the margin; the server hot-loads it and the next round samples from
it. A continued adapter is still one adapter (same shape) on the base the server holds.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from agents.llm import ChatClient
from agents.recording import SessionOpener
from agents.suite import FAMILIES, build_suite
from config.settings import ArtConfig
from learning.endpoint import wait_until
from learning.evaluation import EvalReport, EvalSettings, evaluate
from learning.judged import wait_for_rewards
from learning.rollouts import Planned, agent_config, run_planned
from schemas.transcript import TRAINING
from trainer.config import TrainingConfig
from trainer.registry import BASE_OBJECTIVE, ModelRecord, PromotionDecision, get_model, promote_if_better
from trainer.windows import Window, WindowFilter, pull_window

Say = Callable[[str], None]


class LoopSettings(BaseModel):
    rounds: int
    groups: int
    rollouts: int
    temperature: float
    top_p: float
    explore: float
    eval_per_family: int
    concurrency: int
    max_tokens: int
    objective: str
    teacher: str
    promotion_margin: float
    wait_s: float
    reward_version: str
    seed: int = 0
    budget_s: float | None = Field(None, gt=0, description="start no round the last one's duration says would end "
                                   "past this many seconds of loop time (None: always run every round)")
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    train: dict[str, Any] = Field(default_factory=dict, description="TrainingConfig overrides")

    @classmethod
    def from_config(cls, art: ArtConfig, **overrides: Any) -> LoopSettings:
        c = art.learning
        base: dict[str, Any] = {"rounds": c.rounds, "groups": c.groups, "rollouts": art.judge.rollouts_per_group,
                "temperature": c.temperature, "top_p": c.top_p, "explore": c.explore,
                "eval_per_family": c.eval_per_family, "concurrency": c.concurrency,
                "max_tokens": c.max_tokens, "objective": c.objective, "teacher": c.teacher,
                "promotion_margin": c.promotion_margin, "wait_s": c.wait_s,
                "reward_version": art.judge.reward_version}
        return cls(**(base | {k: v for k, v in overrides.items() if v is not None}))

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(max_tokens=self.max_tokens, concurrency=self.concurrency,
                            reward_version=self.reward_version, wait_s=self.wait_s)


LOOP_TRAINING: dict[str, Any] = {
    "learning_rate": 5e-4, "num_epochs": 8, "max_steps": 40, "batch_size": 8, "max_length": 512,
    "sft_weighting": "rarity", "checkpoint_interval": 0, "evaluation_interval": 0, "early_stopping_patience": 0,
    "eval_fraction": 0.1}
"""Trainer settings the loop uses unless overridden (LoRA r=8 on all projections, the trainer's default)."""
CONTINUE_TRAINING: dict[str, Any] = {"learning_rate": 2e-4, "max_steps": 8, "sft_weighting": "uniform"}
"""On top of LOOP_TRAINING when a round continues the champion's adapter on the champion's own runs. Why:
a fresh adapter on the base trained on every round's runs undid round 1's skill in all three measured
loops (held-out success 0.35 -> 0.06); continuing the champion gently on what it now does keeps what it
learned (its solved runs are near zero loss, so the gradient goes to what is new): on one loop's round-2
runs, 0.375 held-out success continued vs 0.062 fresh (README, the loop); in later bench runs the
continued candidate fell (0.354 -> 0.229), held (0.396) or rose (0.354 -> 0.688).
Uniform: rarity would drop the solved runs that anchor it."""


class RoundTraining(BaseModel):
    """What a round's candidate learns from and where it starts."""

    window: WindowFilter
    init_adapter: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)


def round_training(settings: LoopSettings, since: datetime, lineage: list[str],
                   champion: ModelRecord) -> RoundTraining:
    """A champion that is the base model: a fresh adapter on the lineage's runs of this loop. A champion that
    is an adapter: that adapter, continued on the runs sampled from it in this loop (on-policy), with
    CONTINUE_TRAINING; the fleet's runs join either way when it teaches."""
    if champion.objective == BASE_OBJECTIVE:
        return RoundTraining(window=window_filter(settings, since, lineage))
    return RoundTraining(window=window_filter(settings, since, [champion.model_id]),
                         init_adapter=str(Path(champion.path) / "adapter"), overrides=CONTINUE_TRAINING)


class RoundResult(BaseModel):
    round: int
    champion: str
    runs: int
    train_successes: int
    own_examples: int = 0
    fleet_examples: int = 0
    candidate: str | None = None
    train_steps: int = 0
    eval: EvalReport | None = None
    decision: PromotionDecision | None = None
    hot_load_s: float | None = None
    seconds: dict[str, float] = Field(default_factory=dict)


class LoopResult(BaseModel):
    loop_id: str
    objective: str
    teacher: str
    base_eval: EvalReport
    rounds: list[RoundResult]
    champion: str
    champion_eval: EvalReport
    seconds: float

    def table(self) -> list[str]:
        """Success rate, mean reward and tokens/s per model version, in the order they were evaluated."""
        rows = [("round 0", self.base_eval, "start")]
        rows += [(f"round {r.round}", r.eval, "promoted" if r.decision and r.decision.promoted else "kept champion")
                 for r in self.rounds if r.eval is not None]
        out = [f"{'':8} {'model':34} {'success':>16} {'reward':>7} {'tok/s':>6}  outcome"]
        for label, e, what in rows:
            assert e is not None
            out.append(f"{label:8} {e.model_id:34} {e.success:6.3f} [{e.success_lo:.2f},{e.success_hi:.2f}] "
                       f"{e.reward:7.3f} {e.tokens_per_s:6.1f}  {what}")
        return out


def plan_round(loop_id: str, round_: int, settings: LoopSettings) -> list[Planned]:
    """``groups`` training missions drawn for this round (seeded, the families taking turns so each gets
    its share), each run ``rollouts`` times in one group."""
    rng = random.Random(f"{settings.seed}:{round_}")
    pools = []
    for family in settings.families:
        missions = build_suite("train", families=[family])
        rng.shuffle(missions)
        pools.append(missions)
    chosen = [m for turn in zip_longest(*pools) for m in turn if m is not None][: settings.groups]
    return [Planned(mission=m, group_id=f"{loop_id}-r{round_}-{m.name}", index=k)
            for m in chosen for k in range(settings.rollouts)]


def round_fits(elapsed_s: float, last_round_s: float | None, budget_s: float | None) -> bool:
    """Whether another round fits the budget, judged by the last round's duration (a round takes about as
    long as the one before it: the same number of runs, steps and evaluations). The first always runs."""
    return budget_s is None or last_round_s is None or elapsed_s + last_round_s <= budget_s


def window_filter(settings: LoopSettings, since: datetime, lineage: list[str]) -> WindowFilter:
    """SFT learns from exact successes only; AWR and DPO need the failures too (advantages, pairs)."""
    return WindowFilter(reward_version=settings.reward_version, since=since,
                        models=lineage if settings.teacher == "self" else [],
                        min_success=1.0 if settings.objective == "sft" else None,
                        top_k_per_group=settings.rollouts)


class Loop:
    """Holds what every round needs; ``run`` does the rounds."""

    def __init__(self, art: ArtConfig, settings: LoopSettings, llm: ChatClient, opener: SessionOpener, client: Client,
                 base_url: str, base_dir: Path, lineage: Callable[[], list[str]], work_dir: Path, *,
                 flush: Callable[[], Any] | None = None, say: Say = print) -> None:
        self.art, self.s, self.llm, self.opener, self.client = art, settings, llm, opener, client
        self.base_url, self.base_dir, self.lineage, self.work_dir = base_url, base_dir, lineage, work_dir
        self.flush, self.say = flush, say
        self.loop_id = f"loop-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
        self.heldout = build_suite("heldout", per_family=settings.eval_per_family, families=settings.families)

    async def evaluate(self, model_id: str, round_: int) -> EvalReport:
        done = [0]

        def on_run(_: Any) -> None:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == len(self.heldout):
                self.say(f"  eval {model_id}: {done[0]}/{len(self.heldout)} runs")

        report = await evaluate(model_id, self.heldout, self.llm, self.opener, self.client, self.s.eval_settings(),
                                self.work_dir / f"eval-{round_}-{model_id}", flush=self.flush, on_run=on_run,
                                loop_id=self.loop_id, round_=round_)
        for line in report.lines():
            self.say("  " + line)
        return report

    async def champion_eval(self, champion_id: str) -> EvalReport:
        """Round 0: the starting champion on this suite, measured now (the curve's first point and the bar
        every candidate must clear)."""
        self.say(f"round 0: evaluating the champion {champion_id} on {len(self.heldout)} held-out missions")
        return await self.evaluate(champion_id, 0)

    async def run(self, champion_id: str) -> LoopResult:
        started = time.monotonic()
        since = datetime.now(UTC)
        base_eval = await self.champion_eval(champion_id)
        rounds: list[RoundResult] = []
        champion, champion_eval = champion_id, base_eval
        for r in range(1, self.s.rounds + 1):
            last = sum(rounds[-1].seconds.values()) if rounds else None
            if not round_fits(time.monotonic() - started, last, self.s.budget_s):
                self.say(f"time budget {self.s.budget_s:.0f} s: round {r} would not end in time, stopping")
                break
            result = await self.round(r, champion, since)
            rounds.append(result)
            if result.decision is not None and result.decision.promoted and result.eval is not None:
                champion, champion_eval = result.candidate or champion, result.eval
        return LoopResult(loop_id=self.loop_id, objective=self.s.objective, teacher=self.s.teacher,
                          base_eval=base_eval, rounds=rounds, champion=champion, champion_eval=champion_eval,
                          seconds=time.monotonic() - started)

    async def round(self, r: int, champion: str, since: datetime) -> RoundResult:
        t0 = time.monotonic()
        plan = plan_round(self.loop_id, r, self.s)
        self.say(f"round {r}: {len(plan)} runs ({self.s.groups} groups x {self.s.rollouts}) on {champion}, "
                 f"temperature {self.s.temperature}, top-p {self.s.top_p}, explore {self.s.explore}")
        done = [0, 0]

        def on_run(o: Any) -> None:
            done[0] += 1
            done[1] += o.success
            if done[0] % 16 == 0 or done[0] == len(plan):
                self.say(f"  runs {done[0]}/{len(plan)}, exact successes {done[1]}")

        outcomes = await run_planned(plan, self.llm, self.opener,
                                     agent=agent_config(champion, self.s.temperature, self.s.max_tokens,
                                                        self.s.top_p, self.s.explore),
                                     run_kind=TRAINING, work_dir=self.work_dir / f"round-{r}",
                                     concurrency=self.s.concurrency, on_done=on_run)
        if self.flush is not None:
            await self.flush()
        await asyncio.to_thread(wait_for_rewards, self.client, [o.session_id for o in outcomes],
                                self.s.reward_version, self.s.wait_s)
        result = RoundResult(round=r, champion=champion, runs=len(outcomes),
                             train_successes=sum(o.success for o in outcomes),
                             seconds={"runs": time.monotonic() - t0})
        self.say(f"  judged: {len(outcomes)} rewards stored ({time.monotonic() - t0:.0f} s)")
        t1 = time.monotonic()
        lineage = self.lineage()
        plan_t = round_training(self.s, since, lineage, get_model(self.client, champion))
        window = await asyncio.to_thread(pull_window, self.client, plan_t.window)
        own = sum(1 for t in window.trajectories if t.model in lineage)
        result.own_examples, result.fleet_examples = own, len(window.trajectories) - own
        if not window.trajectories:
            self.say("  nothing to learn from yet (no run passed the reward filter): next round")
            return result
        start = f"continuing {champion}" if plan_t.init_adapter else "a fresh adapter on the base"
        self.say(f"  training {self.s.objective} ({start}) on window {window.window_id}: {own} own runs, "
                 f"{result.fleet_examples} fleet runs")
        outcome = await asyncio.to_thread(self.train, window, r, plan_t)
        result.candidate, result.train_steps = outcome.model.model_id, outcome.result.steps
        result.seconds["train"] = time.monotonic() - t1
        self.say(f"  trained {result.candidate}: {result.train_steps} steps ({result.seconds['train']:.0f} s)")
        t2 = time.monotonic()
        await asyncio.to_thread(wait_until, self.base_url, result.candidate, result.candidate, 60.0)
        result.eval = await self.evaluate(result.candidate, r)
        result.seconds["eval"] = time.monotonic() - t2
        result.decision = promote_if_better(self.client, get_model(self.client, result.candidate),
                                            self.s.promotion_margin)
        self.say(f"  {'PROMOTED' if result.decision.promoted else 'not promoted'}: {result.decision.reason}")
        if result.decision.promoted:
            result.hot_load_s = await asyncio.to_thread(wait_until, self.base_url, "champion", result.candidate, 60.0)
            self.say(f"  the server answers `champion` with {result.candidate} after {result.hot_load_s:.1f} s")
        return result

    def train(self, window: Window, round_: int, plan: RoundTraining) -> Any:
        from trainer.runs import run_training

        # a held-out loss needs whole groups set aside: worth it only when there are enough to spare
        diagnostic = {"eval_fraction": LOOP_TRAINING["eval_fraction"] if window.group_count >= 10 else 0.0}
        cfg = TrainingConfig(**(LOOP_TRAINING | plan.overrides | diagnostic | self.s.train | {
            "model_path": str(self.base_dir), "objective": self.s.objective, "rollouts_per_group": self.s.rollouts,
            "init_adapter": plan.init_adapter}))
        return run_training(self.art, cfg, WindowFilter(reward_version=self.s.reward_version), client=self.client,
                            progress=False, window=window, name=f"{self.loop_id}-r{round_}")
