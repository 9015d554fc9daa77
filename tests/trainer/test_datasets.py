from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer import synthetic
from trainer.datasets import (
    Encoded,
    advantage_weights,
    awr_examples,
    check_mask,
    encode_conversation,
    preference_pairs,
    rarity_weights,
    sft_examples,
)
from trainer.errors import TrainerError
from trainer.windows import window_from_runs

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_sft_loss_only_on_assistant_turns(tokenizer: Any) -> None:
    window = window_from_runs(synthetic.runs(3, 4, seed=1))
    examples = sft_examples(window.successful(0.7), tokenizer, 512)
    assert examples and all(sum(e.mask) > 0 for e in examples)
    trained = tokenizer.decode([i for i, m in zip(examples[0].ids, examples[0].mask, strict=True) if m])
    assert "Thought:" in trained and "Final Answer:" in trained
    assert "Objective:" not in trained and "Observation:" not in trained


def test_long_conversations_split_at_turns(tokenizer: Any) -> None:
    window = window_from_runs(synthetic.runs(2, 2, seed=1))
    chunks = sft_examples(window.trajectories, tokenizer, 96)
    assert len(chunks) > len(window.trajectories)
    assert all(len(c) <= 96 and any(c.mask) for c in chunks)


def test_template_without_generation_markers_falls_back(tokenizer: Any) -> None:
    plain = tokenizer.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    tokenizer_plain = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer_plain.chat_template = plain
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                {"role": "assistant", "content": "Thought: a"}]
    (marked,) = encode_conversation(tokenizer, messages, 512)
    (fallback,) = encode_conversation(tokenizer_plain, messages, 512)
    assert marked.ids == fallback.ids
    assert all(f for m, f in zip(marked.mask, fallback.mask, strict=True) if m)
    extra = [i for i, m, f in zip(marked.ids, marked.mask, fallback.mask, strict=True) if f and not m]
    assert tokenizer.decode(extra).strip() == ""  # only the template's newline after the turn


def test_all_zero_mask_fails_loudly() -> None:
    with pytest.raises(TrainerError, match="all zero"):
        check_mask([Encoded([1, 2, 3], [0, 0, 0])], "sft")


def test_pairs_are_best_vs_worst_of_each_group(tokenizer: Any) -> None:
    window = window_from_runs(synthetic.runs(5, 4, seed=2))
    assert len(preference_pairs(window, tokenizer, 512)) == 5


def test_awr_weights_follow_advantage(tokenizer: Any) -> None:
    assert advantage_weights([1.0, -1.0], 1.0, 20.0)[0] > 1 > advantage_weights([1.0, -1.0], 1.0, 20.0)[1]
    assert max(advantage_weights([100.0, 0.0], 1.0, 5.0)) == pytest.approx(2 * 5 / 6)
    window = window_from_runs(synthetic.runs(3, 4, seed=2))
    examples = awr_examples(window, tokenizer, 512, 1.0, 20.0)
    assert sum(e.weight for e in examples) / len(examples) == pytest.approx(1.0)


def test_compact_runs_train_only_their_good_turns(tokenizer: Any) -> None:
    """The recorded prefix (system + worked example) and failed steps are context; the loss is on the rest."""
    import json

    from trainer.datasets import conversation
    from trainer.windows import WindowStep, WindowTrajectory

    prefix = [{"role": "system", "content": "Reply with one line."}, {"role": "user", "content": "Task: 1+1?"},
              {"role": "assistant", "content": "answer: 2"}]
    steps = [WindowStep(step_number=1, observation="Task: 3*4?", action_kind="think", action_input="hmm twelve",
                        error="malformed decision: no TOOL or ANSWER line"),
             WindowStep(step_number=2, observation="Error: reply with one line", action_kind="use_tool",
                        tool="calculator", action_input="3*4", tool_result="12"),
             WindowStep(step_number=3, observation="Result: 12", action_kind="answer", action_text="12",
                        action_input="12")]
    traj = WindowTrajectory(session_id="s", agent_name="a", group_id=None, objective="3*4?", reward_version="v",
                            total=1.0, advantage=0.0, steps=steps,
                            agent_config={"prompt_style": "compact", "prompt_prefix": json.dumps(prefix)})
    (example,) = encode_conversation(tokenizer, conversation(traj), 1024)
    trained = tokenizer.decode([i for i, m in zip(example.ids, example.mask, strict=True) if m])
    assert "calculator: 3*4" in trained and "answer: 12" in trained
    assert "hmm twelve" not in trained and "answer: 2<" not in trained and "Task:" not in trained
    assert tokenizer.decode(example.ids).count("answer: 2<") == 1  # the example is still in the context


def test_rarity_weights_favour_the_rare_success(tokenizer: Any) -> None:
    """A group that all succeeded drops out; one success of four outweighs each of three of four."""
    window = window_from_runs(synthetic.runs(3, 4, seed=1))
    groups = sorted({t.group_key for t in window.trajectories})
    assert all(t.group_size == 4 for t in window.trajectories)  # RULER's group size rides along
    kept = ([t for t in window.trajectories if t.group_key == groups[0]]  # 4 of 4
            + [t for t in window.trajectories if t.group_key == groups[1]][:3]  # 3 of 4
            + [t for t in window.trajectories if t.group_key == groups[2]][:1])  # 1 of 4
    weights = rarity_weights(kept)
    assert weights == pytest.approx([0.0] * 4 + [2 / 3] * 3 + [2.0])  # raw 0.25 and 0.75, mean 1 over the live
    examples = sft_examples(kept, tokenizer, 512, weights)
    assert len(examples) == 4 and [e.weight for e in examples] == pytest.approx([2 / 3] * 3 + [2.0])
    assert rarity_weights(kept[:4]) == [1.0] * 4  # every group solved: nothing is rarer, uniform
    alone = kept[-1].model_copy(update={"group_id": None, "session_id": "alone", "group_size": 1})
    assert rarity_weights([*kept[4:], alone]) == pytest.approx([2 / 3] * 3 + [2.0, 1.0])  # alone: the mean
