"""TrainingConfig from the ``[art.training]`` table: typed values, flags on top, errors that name the key."""

from __future__ import annotations

import pytest

from trainer.config import TrainingConfig
from trainer.errors import TrainingConfigError


def test_table_values_are_typed_and_command_line_flags_win() -> None:
    cfg = TrainingConfig.from_settings({"objective": "awr", "learning_rate": "0.001", "max_steps": "12",
                                        "packing": "false"}, {"max_steps": 3})
    assert (cfg.objective, cfg.learning_rate, cfg.max_steps, cfg.packing) == ("awr", 0.001, 3, False)
    assert cfg.batch_size == TrainingConfig().batch_size


@pytest.mark.parametrize(("table", "message"), [
    ({"learning_rat": 0.1}, "[art.training] has no key 'learning_rat': use one of model_path, objective,"),
    ({"max_steps": "many"}, "[art.training] max_steps = 'many': Input should be a valid integer, unable to parse "
                            "string as an integer"),
    ({"objective": "ppo"}, "objective must be one of ('sft', 'dpo', 'awr'), not 'ppo'"),
])
def test_a_bad_table_names_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingConfigError) as info:
        TrainingConfig.from_settings(table)
    assert str(info.value).startswith(message)
