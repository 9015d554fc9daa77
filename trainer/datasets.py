"""Training examples from a window: SFT conversations, preference pairs and advantage weights.

A trajectory becomes a chat: the system turn states the objective, each user turn is what the agent
observed before a step, each assistant turn is the step it took (thought + action). The loss falls
only on assistant tokens. Causally, one conversation with every assistant turn in the loss trains
exactly "context so far -> the step the agent took" for every step at once; conversations longer
than ``max_length`` are split at turn boundaries, each chunk restarting from the objective.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from schemas.transcript import COMPACT_STYLE, PROMPT_PREFIX_KEY, action_line, malformed_turn
from trainer.errors import EmptyDatasetError, TrainerError
from trainer.windows import Window, WindowStep, WindowTrajectory

SYSTEM_PROMPT = "You are a careful agent. Reply with Thought and Action lines."


@dataclass(slots=True)
class Encoded:
    """Token ids, a 0/1 mask of the tokens the loss is on, and the example's weight."""

    ids: list[int]
    mask: list[int]
    weight: float = 1.0

    def __len__(self) -> int:
        return len(self.ids)


Pair = tuple[Encoded, Encoded]
"""(chosen, rejected)."""


def render_step(step: WindowStep) -> str:
    """The assistant turn for one step: what the agent thought and did."""
    lines = [f"Thought: {step.thought}"] if step.thought else []
    if step.action_kind == "use_tool":
        lines += [f"Action: {step.tool}", f"Action Input: {step.action_input or step.action_text}"]
    elif step.action_kind == "answer":
        lines.append(f"Final Answer: {step.action_text}")
    elif step.action_kind == "ask":
        lines.append(f"Ask: {step.action_text}")
    else:
        lines.append(f"Think: {step.action_text}" if step.action_text else "Think:")
    return "\n".join(lines)


def _observation(step: WindowStep, previous: WindowStep | None) -> str:
    parts = []
    if previous is not None and previous.tool_result:
        parts.append(f"Result: {previous.tool_result}")
    if previous is not None and previous.error:
        parts.append(f"Error: {previous.error}")
    parts.append(f"Observation: {step.observation}")
    return "\n".join(parts)


def compact_conversation(traj: WindowTrajectory) -> list[dict[str, Any]]:
    """The exact chat a compact-style run saw (``schemas.transcript``): the recorded prompt prefix, then
    observations as user turns and canonical action lines as assistant turns. The prefix's worked example
    and the steps that failed (malformed reply, tool error) stay as context with ``train: False``, so the
    loss falls only on what this run did right."""
    messages: list[dict[str, Any]] = [{"role": m["role"], "content": m["content"], "train": False}
                                      for m in json.loads(traj.agent_config[PROMPT_PREFIX_KEY])]
    for step in traj.steps:
        messages.append({"role": "user", "content": step.observation})
        if step.action_kind in ("use_tool", "answer"):
            said = action_line(step.action_kind, step.tool, step.action_input or step.action_text)
        else:
            said = malformed_turn(step.action_input)
        messages.append({"role": "assistant", "content": said, "train": step.error is None})
    return messages


def is_compact(traj: WindowTrajectory) -> bool:
    return traj.agent_config.get("prompt_style") == COMPACT_STYLE and PROMPT_PREFIX_KEY in traj.agent_config


def conversation(traj: WindowTrajectory) -> list[dict[str, Any]]:
    """The chat to train on: the compact run's own transcript, else system(objective), then
    (user: observation, assistant: step) per step."""
    if is_compact(traj):
        return compact_conversation(traj)
    messages: list[dict[str, Any]] = [{"role": "system", "content": f"{SYSTEM_PROMPT}\nObjective: {traj.objective}"}]
    previous: WindowStep | None = None
    for step in traj.steps:
        messages.append({"role": "user", "content": _observation(step, previous)})
        messages.append({"role": "assistant", "content": render_step(step)})
        previous = step
    return messages


def _template(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out.get("assistant_masks") or [0] * len(ids))
    context_only = any(m.get("train") is False for m in messages)
    if (any(mask) and not context_only) or not any(m["role"] == "assistant" for m in messages):
        return ids, mask
    return ids, _mask_by_prefix(tokenizer, messages, len(ids))


def _mask_by_prefix(tokenizer: Any, messages: list[dict[str, Any]], n: int) -> list[int]:
    """Assistant mask from the tokens each assistant turn adds to the prefix (templates without
    {% generation %}, and turns marked ``train: False``, which stay context only)."""
    mask = [0] * n
    for k, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("train") is False:
            continue
        start = len(tokenizer.apply_chat_template(messages[:k], tokenize=True, return_dict=True,
                                                  add_generation_prompt=True)["input_ids"])
        end = len(tokenizer.apply_chat_template(messages[: k + 1], tokenize=True, return_dict=True)["input_ids"])
        for i in range(start, min(end, n)):
            mask[i] = 1
    return mask


def encode_conversation(tokenizer: Any, messages: list[dict[str, Any]], max_length: int) -> list[Encoded]:
    """One Encoded per chunk of whole turns that fits ``max_length`` (a single oversize turn is cut)."""
    ids, mask = _template(tokenizer, messages)
    if len(ids) <= max_length:
        return [Encoded(ids, mask)]
    head, units = messages[:1], [messages[i:i + 2] for i in range(1, len(messages), 2)]
    chunks: list[Encoded] = []
    current: list[dict[str, Any]] = []
    for unit in units:
        trial = _template(tokenizer, head + current + unit)
        if current and len(trial[0]) > max_length:
            chunks.append(Encoded(*_template(tokenizer, head + current)))
            current = []
        current += unit
    if current:
        chunks.append(Encoded(*_template(tokenizer, head + current)))
    return [Encoded(c.ids[:max_length], c.mask[:max_length]) for c in chunks]


def check_mask(examples: list[Encoded], what: str) -> list[Encoded]:
    """Drop examples without trainable tokens; fail loudly when none has any (TRAINER.md pitfall)."""
    kept = [e for e in examples if any(e.mask[1:])]
    if examples and not kept:
        raise TrainerError(f"{what}: the assistant mask is all zero; the chat template marks no assistant "
                           "tokens, so nothing would be trained")
    return kept


def sft_examples(trajectories: list[WindowTrajectory], tokenizer: Any, max_length: int,
                 weights: list[float] | None = None) -> list[Encoded]:
    """Every step of the given (successful) trajectories, as assistant-only-loss chat examples; a
    trajectory's examples carry its weight (default 1), and weight 0 leaves it out."""
    ws = weights if weights is not None else [1.0] * len(trajectories)
    out = [Encoded(e.ids, e.mask, w) for t, w in zip(trajectories, ws, strict=True) if t.steps and w > 0
           for e in encode_conversation(tokenizer, conversation(t), max_length)]
    return check_mask(out, "sft examples")


def rarity_weights(kept: list[WindowTrajectory]) -> list[float]:
    """1 - (kept runs of the group / its RULER group size), normalised to mean 1 over the non-zero ones.

    Why: a group whose every run succeeded teaches the policy nothing it does not already do (GRPO
    gives it no gradient), while the one success in a group of four is what exploration found; plain
    SFT lets many easy successes drown the rare one. All zero (every group solved): uniform. A run
    RULER judged alone (group size 1) has no rarity to measure and keeps the mean weight, 1.

    >>> from trainer.windows import WindowTrajectory as T
    >>> runs = [T(session_id=s, agent_name="a", group_id=g, objective="o", reward_version="v", total=1.0,
    ...           advantage=0.0, group_size=4) for s, g in [("1", "easy"), ("2", "easy"), ("3", "easy"),
    ...           ("4", "easy"), ("5", "hard")]]
    >>> rarity_weights(runs)
    [0.0, 0.0, 0.0, 0.0, 1.0]
    """
    kept_in: dict[str, int] = {}
    for t in kept:
        kept_in[t.group_key] = kept_in.get(t.group_key, 0) + 1
    raw = [None if t.group_size <= 1 else max(0.0, 1.0 - kept_in[t.group_key] / max(t.group_size, kept_in[t.group_key]))
           for t in kept]
    live = [w for w in raw if w is not None and w > 0]
    if not live:
        return [1.0] * len(kept)
    mean = sum(live) / len(live)
    return [1.0 if w is None else w / mean for w in raw]


def best_and_worst(window: Window, min_margin: float = 0.0) -> list[tuple[WindowTrajectory, WindowTrajectory]]:
    """Per group: (highest, lowest) reward total, when they differ by more than ``min_margin``."""
    groups: dict[str, list[WindowTrajectory]] = {}
    for t in window.trajectories:
        if t.group_id and t.steps:
            groups.setdefault(t.group_id, []).append(t)
    out = []
    for members in groups.values():
        ranked = sorted(members, key=lambda t: (-t.total, t.session_id))
        if len(ranked) >= 2 and ranked[0].total - ranked[-1].total > min_margin:
            out.append((ranked[0], ranked[-1]))
    return out


def preference_pairs(window: Window, tokenizer: Any, max_length: int, min_margin: float = 0.0) -> list[Pair]:
    """(chosen, rejected) whole conversations, cut to ``max_length``, best vs worst of each group."""
    out: list[Pair] = []
    for best, worst in best_and_worst(window, min_margin):
        chosen, rejected = (encode_conversation(tokenizer, conversation(t), max_length)[0] for t in (best, worst))
        if any(chosen.mask[1:]) and any(rejected.mask[1:]):
            out.append((chosen, rejected))
    if best_and_worst(window, min_margin) and not out:
        raise TrainerError("preference pairs: the assistant mask is all zero")
    return out


def advantage_weights(advantages: list[float], temperature: float, max_weight: float) -> list[float]:
    """exp(A / T), clipped at ``max_weight``, normalised to mean 1 (so the LR means the same as in SFT).

    >>> [round(w, 3) for w in advantage_weights([0.0, 0.0], 1.0, 20.0)]
    [1.0, 1.0]
    """
    raw = [min(math.exp(a / temperature), max_weight) for a in advantages]
    mean = sum(raw) / len(raw) if raw else 1.0
    return [w / mean for w in raw]


def awr_examples(window: Window, tokenizer: Any, max_length: int, temperature: float,
                 max_weight: float) -> list[Encoded]:
    """Every trajectory of the window, weighted by its group-relative advantage (RewardAssigned.advantage)."""
    trajectories = [t for t in window.trajectories if t.steps]
    weights = advantage_weights([t.advantage for t in trajectories], temperature, max_weight)
    out = [Encoded(e.ids, e.mask, w) for t, w in zip(trajectories, weights, strict=True)
           for e in encode_conversation(tokenizer, conversation(t), max_length)]
    return check_mask(out, "awr examples")


def require(examples: list[Any], what: str, window: Window) -> None:
    if not examples:
        raise EmptyDatasetError(f"window {window.window_id} gave no {what} "
                                f"({len(window.trajectories)} trajectories, {window.group_count} groups)")
