"""RULER: rewards for a group of trajectories (same group_id) judged relative to each other.

Components, each in [0, 1], per trajectory (m = ``heuristic.measure``):
- success = m.task_completion; efficiency = m.efficiency;
- quality = the heuristic judge's overall score under the configured judge weights
  (``JudgeWeights.combine``): the judge a reward version is built with flows into every reward, so
  re-scoring under new weights moves rewards, not only judgments;
- novelty = 1 - max over the other trajectories of Jaccard(A_i, A_j), A = set of (tool, input)
  calls; two empty sets count as identical (J = 1); a group of one has novelty 0.
Heuristic total = 0.4*success + 0.2*efficiency + 0.3*quality + 0.1*novelty.
LLM mapping: the judge's group-aware score (clamped to [0, 1]) is both ``quality`` and ``total``;
success, efficiency and novelty keep their heuristic values so analysts can compare.
Advantage = (total - mean) / (std + 1e-6) with the population std over the group; a group of one
or a group of equal totals gets 0. Confidence = min(1, 0.5 + 0.125*(n - 1)), halved when the
trajectory was closed by a timeout or misses steps (the evidence is incomplete).
Duplicates of a session (redeliveries) are scored once; the group is rendered sorted by session_id
so the prompt, the cache key and every score do not depend on arrival order.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.settings import ArtConfig
from judges.cache import JudgeCache, content_hash
from judges.contract import JudgeWeights, clamp, reward_id
from judges.errors import JudgeError, RulerResponseError
from judges.heuristic import Measurement, measure
from judges.llm import ChatClient, Exchange
from judges.parsing import extract_json
from judges.prompts import RULER_RETRY, render_steps, render_task, ruler_messages
from schemas.models import ClosedBy, RewardAssigned, TrajectoryCompleted, UseTool

RULER_WEIGHTS: dict[str, float] = {"success": 0.4, "efficiency": 0.2, "quality": 0.3, "novelty": 0.1}
ADVANTAGE_EPS = 1e-6


@runtime_checkable
class Ruler(Protocol):
    """Scores one group; every RewardAssigned carries ``reward_version``."""

    reward_version: str

    def score_group(self, group: Sequence[TrajectoryCompleted]) -> list[RewardAssigned]: ...


class Components(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    success: float = Field(ge=0, le=1)
    efficiency: float = Field(ge=0, le=1)
    quality: float = Field(ge=0, le=1)
    novelty: float = Field(ge=0, le=1)

    def total(self) -> float:
        return sum(w * getattr(self, name) for name, w in RULER_WEIGHTS.items())


def prepare_group(group: Sequence[TrajectoryCompleted]) -> list[TrajectoryCompleted]:
    """Drop repeated session ids (first wins) and refuse a group that mixes group ids."""
    seen: dict[str, TrajectoryCompleted] = {}
    for traj in group:
        seen.setdefault(traj.session_id, traj)
    out = list(seen.values())
    group_ids = {t.group_id for t in out}
    if len(group_ids) > 1:
        raise JudgeError(f"a RULER group must share one group_id, got {sorted(map(str, group_ids))}")
    return out


def action_set(traj: TrajectoryCompleted) -> frozenset[tuple[str, str]]:
    return frozenset((ts.step.action.tool, ts.step.action.input.strip())
                     for ts in traj.steps if isinstance(ts.step.action, UseTool))


def jaccard(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def novelty_scores(group: Sequence[TrajectoryCompleted]) -> list[float]:
    sets = [action_set(t) for t in group]
    if len(sets) < 2:
        return [0.0] * len(sets)
    return [1.0 - max(jaccard(a, b) for j, b in enumerate(sets) if j != i) for i, a in enumerate(sets)]


def advantages(totals: Sequence[float]) -> list[float]:
    """(r - mean) / (population std + 1e-6); zeros for a group of one or of equal totals."""
    if not totals:
        return []
    mean = statistics.fmean(totals)
    std = statistics.pstdev(totals)
    return [(r - mean) / (std + ADVANTAGE_EPS) for r in totals]


def confidence(traj: TrajectoryCompleted, group_size: int) -> float:
    base = min(1.0, 0.5 + 0.125 * (group_size - 1))
    complete = traj.closed_by == ClosedBy.completed and not traj.missing_seqs
    return base if complete else base / 2


def heuristic_components(group: Sequence[TrajectoryCompleted], weights: JudgeWeights | None = None
                         ) -> list[tuple[Components, Measurement]]:
    """Each trajectory's components; quality is the judge's overall score under ``weights``."""
    weights = weights or JudgeWeights()
    out = []
    for traj, novelty in zip(group, novelty_scores(group), strict=True):
        m = measure(traj)
        s = m.scores
        out.append((Components(success=s.task_completion, efficiency=s.efficiency, quality=weights.combine(s),
                               novelty=novelty), m))
    return out


def _rewards(group: Sequence[TrajectoryCompleted], components: Sequence[Components], totals: Sequence[float],
             reasons: Sequence[str], version: str) -> list[RewardAssigned]:
    n = len(group)
    out = []
    for traj, c, total, adv, reason in zip(group, components, totals, advantages(totals), reasons, strict=True):
        rank = 1 + sum(1 for other in totals if other > total)
        out.append(RewardAssigned(
            event_id=reward_id(traj.session_id, version), session_id=traj.session_id, agent_name=traj.agent_name,
            group_id=traj.group_id, reward_version=version, total=total, success=c.success,
            efficiency=c.efficiency, quality=c.quality, novelty=c.novelty,
            reasoning=f"rank {rank}/{n}: {reason}", confidence=confidence(traj, n), advantage=adv, group_size=n))
    return out


class HeuristicRuler:
    """RULER without an LLM: weighted heuristic components, then group-relative advantages."""

    def __init__(self, *, reward_version: str = "ruler-heuristic@1", weights: JudgeWeights | None = None) -> None:
        self.reward_version = reward_version
        self.weights = weights or JudgeWeights()

    @classmethod
    def from_config(cls, config: ArtConfig) -> HeuristicRuler:
        return cls(reward_version=config.judge.reward_version, weights=JudgeWeights.from_config(config.judge))

    def score_group(self, group: Sequence[TrajectoryCompleted]) -> list[RewardAssigned]:
        group = prepare_group(group)
        parts = heuristic_components(group, self.weights)
        comps = [c for c, _ in parts]
        totals = [c.total() for c in comps]
        reasons = [f"success {c.success:.2f}, efficiency {c.efficiency:.2f}, quality {c.quality:.2f}, novelty "
                   f"{c.novelty:.2f} -> total {c.total():.3f}; {m.explain()}" for c, m in parts]
        return _rewards(group, comps, totals, reasons, self.reward_version)

    async def ascore_group(self, group: Sequence[TrajectoryCompleted]) -> list[RewardAssigned]:
        return self.score_group(group)


class RulerScore(BaseModel):
    model_config = ConfigDict(extra="ignore")
    trajectory_id: str
    explanation: str = ""
    score: float


class RulerAnswer(BaseModel):
    """The JSON the RULER judge must return."""

    model_config = ConfigDict(extra="ignore")
    scores: list[RulerScore]


def parse_ruler_answer(text: str, ids: Sequence[str]) -> dict[str, RulerScore]:
    """Validated scores keyed by trajectory id, clamped to [0, 1]; exactly one per id or an error."""
    try:
        answer = RulerAnswer.model_validate(extract_json(text))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RulerResponseError(text, f"JSON does not match the schema at {where}: {first['msg']}") from None
        raise RulerResponseError(text, "not valid JSON") from None
    got = [s.trajectory_id for s in answer.scores]
    if len(got) != len(ids):
        raise RulerResponseError(text, f"{len(got)} scores for {len(ids)} trajectories")
    if sorted(got) != sorted(ids):
        raise RulerResponseError(text, f"trajectory ids {sorted(got)} do not match {sorted(ids)}")
    bad = [s.trajectory_id for s in answer.scores if not math.isfinite(s.score)]
    if bad:
        raise RulerResponseError(text, f"non-finite score for {bad}")
    return {s.trajectory_id: s.model_copy(update={"score": clamp(s.score)}) for s in answer.scores}


class LLMRuler:
    """RULER with an LLM judge reading the whole group at once; cached by group content."""

    def __init__(self, client: ChatClient, *, reward_version: str = "ruler-llm@1", cache: JudgeCache | None = None,
                 max_retries: int = 2, temperature: float = 0.0) -> None:
        self.client = client
        self.reward_version = reward_version
        self.cache = cache if cache is not None else JudgeCache()
        self.max_retries = max_retries
        self.temperature = temperature

    @classmethod
    def from_config(cls, config: ArtConfig, *, cache: JudgeCache | None = None) -> LLMRuler:
        return cls(ChatClient.from_config(config.models), reward_version=config.judge.reward_version, cache=cache)

    def score_group(self, group: Sequence[TrajectoryCompleted]) -> list[RewardAssigned]:
        group = prepare_group(group)
        if not group:
            return []
        labels, digest, exchange = self._start(group)
        while (messages := exchange.pending()) is not None:
            exchange.offer(self.client.complete(messages, temperature=self.temperature))
        return self._finish(group, labels, digest, exchange)

    async def ascore_group(self, group: Sequence[TrajectoryCompleted]) -> list[RewardAssigned]:
        group = prepare_group(group)
        if not group:
            return []
        labels, digest, exchange = self._start(group)
        while (messages := exchange.pending()) is not None:
            exchange.offer(await self.client.acomplete(messages, temperature=self.temperature))
        return self._finish(group, labels, digest, exchange)

    def _start(self, group: list[TrajectoryCompleted]
               ) -> tuple[dict[str, str], str, Exchange[dict[str, RulerScore]]]:
        """Label unique renderings t1..tk in session_id order; identical trajectories share a label."""
        canonical = sorted(group, key=lambda t: t.session_id)
        context = canonical[0]
        label_of_body: dict[str, str] = {}
        labels: dict[str, str] = {}
        for traj in canonical:
            body = render_steps(traj)
            if (traj.objective, traj.success_criteria) != (context.objective, context.success_criteria):
                body = f"{render_task(traj)}\n{body}"
            labels[traj.session_id] = label_of_body.setdefault(body, f"t{len(label_of_body) + 1}")
        blocks = [(label, body) for body, label in label_of_body.items()]
        messages = ruler_messages(context, blocks)
        ids = [label for label, _ in blocks]

        def exchange(retries: int) -> Exchange[dict[str, RulerScore]]:
            return Exchange(messages, lambda text: parse_ruler_answer(text, ids), max_retries=retries,
                            correction=lambda exc: RULER_RETRY.format(reason=exc.reason, count=len(ids),
                                                                      ids=", ".join(ids)))

        digest = content_hash({"model": self.client.model, "messages": messages})
        cached = self.cache.get(digest, self.reward_version)
        if cached is not None:
            replay = exchange(0)
            replay.offer(cached)
            if replay.answer is not None:
                return labels, digest, replay
        return labels, digest, exchange(self.max_retries)

    def _finish(self, group: list[TrajectoryCompleted], labels: dict[str, str], digest: str,
                exchange: Exchange[dict[str, RulerScore]]) -> list[RewardAssigned]:
        scores = exchange.result()
        assert exchange.answer is not None
        self.cache.put(digest, self.reward_version, exchange.answer)
        comps, totals, reasons = [], [], []
        for traj, (c, _) in zip(group, heuristic_components(group), strict=True):
            judged = scores[labels[traj.session_id]]
            comps.append(c.model_copy(update={"quality": judged.score}))
            totals.append(judged.score)
            reasons.append(judged.explanation or f"LLM score {judged.score:.2f}")
        return _rewards(group, comps, totals, reasons, self.reward_version)
