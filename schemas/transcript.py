"""The compact transcript: how a step looks to a small model, shared by the runner and the trainer.

Why a contract: a policy learns only what it is trained on in the form it is prompted with. The
runner's compact style prompts with a chat whose user turns are the recorded observations and
whose assistant turns are the canonical action lines below; the trainer rebuilds exactly that chat
from the recorded steps, after the recorded prompt prefix (system message and any worked example,
``SessionStarted.agent_config[PROMPT_PREFIX_KEY]``). One definition here, so the two never drift.

An action line is ``<tool name>: <input>`` or ``answer: <text>`` — the tool name first, so a small model
cannot leave it out; a reply that is neither is kept verbatim (clipped) as the turn, so the context of
later steps shows what the model really said.
"""

from __future__ import annotations

COMPACT_STYLE = "compact"
"""``agent_config["prompt_style"]`` of sessions run in this format."""
PROMPT_PREFIX_KEY = "prompt_prefix"
"""``agent_config`` key holding, as a JSON list of {role, content}, every message a compact session's chats
begin with (the system message, then any worked example: context, never a training target)."""
RUN_KIND_KEY = "run_kind"
"""``agent_config`` key saying why a session ran: ``evaluation`` runs never enter training windows."""
EVALUATION = "evaluation"
TRAINING = "training"
MALFORMED_CLIP = 300


def action_line(kind: str, tool: str, text: str) -> str:
    """The assistant turn of a well-formed action."""
    if kind == "use_tool":
        return f"{tool}: {text}"
    if kind == "answer":
        return f"answer: {text}"
    raise ValueError(f"the compact transcript has no line for a {kind!r} action")


def malformed_turn(raw: str) -> str:
    """The assistant turn of a reply that was no action: the reply itself, clipped."""
    return raw.strip()[:MALFORMED_CLIP]
