"""Deterministic synthetic agent runs (events of ``schemas.models``) for tokenizer corpora, the
benchmark and tests: no hub and no LLM are reachable here, and the data must be learnable, so
successful runs follow a fixed search -> read -> answer pattern and failed ones wander and error.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.models import (
    Answer,
    ClosedBy,
    RewardAssigned,
    SessionStatus,
    StepRecorded,
    Think,
    TrajectoryCompleted,
    TrajectoryMetadata,
    TrajectoryStep,
    UseTool,
)

TOPICS = ["solar panels", "tide tables", "bread yeast", "river deltas", "jet engines", "honey bees",
          "glacier melt", "copper wiring", "coffee roasting", "sea turtles", "wind farms", "rice paddies"]
VERBS = {"research": "Research the history of", "planning": "Plan a study schedule about",
         "code": "Write python code that parses data about", "analysis": "Analyze the metrics of",
         "execution": "Execute the deployment checklist for"}
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _steps(topic: str, good: bool, rng: random.Random, start: datetime) -> list[TrajectoryStep]:
    plan: list[tuple[str, str, object, str | None, str | None]]
    if good:
        plan = [
            (f"I need facts about {topic}.", f"Search for {topic} first.",
             UseTool(tool="search", input=f"{topic} overview"), f"Found 3 pages about {topic}.", None),
            *[(f"Search returned pages ({k + 1} read).", f"Read page {k + 1}.",
               UseTool(tool="read", input=f"page {k + 1} on {topic}"),
               f"{topic.capitalize()} are well documented (page {k + 1}).", None)
              for k in range(rng.randint(1, 4))],
            ("I have enough facts.", "Answer with a summary.",
             Answer(text=f"Summary: {topic} are well documented and explained."), None, None),
        ]
    else:
        wander = rng.choice(["calc", "shell", "weather"])
        plan = [
            (f"Task about {topic}.", "Maybe guess.", Think(note=f"guess about {topic}"), None, None),
            *[("Nothing yet.", f"Try {wander} tool again.", UseTool(tool=wander, input=f"{topic}? try {k}"),
               None, f"{wander} failed: bad input") for k in range(rng.randint(1, 5))],
            ("Tool failed.", "Give up.", Answer(text=f"I do not know about {topic}."), None, None),
        ]
    out = []
    for i, (obs, thought, action, result, error) in enumerate(plan):
        step = StepRecorded(step_number=i, observation=obs, thought=thought, action=action,  # type: ignore[arg-type]
                            action_input=getattr(action, "input", ""), tool_result=result, error=error,
                            timestamp=start + timedelta(seconds=i), execution_time_ms=100 + 10 * i, tokens=20)
        out.append(TrajectoryStep(seq=i + 1, step=step))
    return out


def runs(groups: int, rollouts: int = 4, *, seed: int = 0, kind: str = "research", good_share: float = 0.5,
         reward_version: str = "ruler-heuristic@1", start: datetime = BASE_TIME,
         ) -> list[tuple[TrajectoryCompleted, RewardAssigned]]:
    """``groups`` groups of ``rollouts`` runs each (run 0 good, run 1 bad); runs differ in length."""
    rng = random.Random(seed)
    out: list[tuple[TrajectoryCompleted, RewardAssigned]] = []
    for g in range(groups):
        topic = TOPICS[(g + seed) % len(TOPICS)] + ("" if g < len(TOPICS) else f" {g}")
        group_id = f"{kind}-g{seed}-{g}"
        goods = [i == 0 or (i != 1 and rng.random() < good_share) for i in range(rollouts)]
        totals = [round(rng.uniform(0.75, 0.98) if ok else rng.uniform(0.05, 0.4), 3) for ok in goods]
        mean = sum(totals) / len(totals)
        t0 = start + timedelta(minutes=10 * g)
        for i, (ok, total) in enumerate(zip(goods, totals, strict=True)):
            session_id = f"{group_id}-r{i}"
            steps = _steps(topic, ok, rng, t0)
            traj = TrajectoryCompleted(
                session_id=session_id, agent_name=f"{kind}-agent", group_id=group_id,
                objective=f"{VERBS.get(kind, VERBS['research'])} {topic}.", model="tiny",
                steps=steps, final_answer=steps[-1].step.action.text,  # type: ignore[union-attr]
                status=SessionStatus.succeeded if ok else SessionStatus.failed, closed_by=ClosedBy.completed,
                started_at=t0, completed_at=t0 + timedelta(seconds=len(steps)),
                metadata=TrajectoryMetadata(step_count=len(steps), total_tokens=60, total_cost=0.0,
                                            tools_used=sorted({s.step.action.tool for s in steps  # type: ignore[union-attr]
                                                               if s.step.action.kind == "use_tool"}),
                                            error_count=0 if ok else 1, execution_time_ms=330, efficiency=0.8))
            reward = RewardAssigned(session_id=session_id, agent_name=traj.agent_name, group_id=group_id,
                                    reward_version=reward_version, total=total, success=float(ok),
                                    efficiency=0.8, quality=total, novelty=0.5, confidence=0.9,
                                    advantage=round(total - mean, 4), group_size=rollouts,
                                    assigned_at=t0 + timedelta(seconds=5))
            out.append((traj, reward))
    return out


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Plain text in the style of the runs, for training a tokenizer."""
    texts: list[str] = []
    for traj, _ in runs(max(1, n // 4), 4, seed=seed):
        texts.append(traj.objective)
        for s in traj.steps:
            st = s.step
            texts += [st.observation, st.thought, st.action_input, st.tool_result or "", st.error or ""]
    return [t for t in texts if t]
