"""`art models base` registers the base model once (with the tiny model here: converting and serving the
real SmolLM2 is checked by the one real-model test, tests/learning/test_real_round.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer.basemodel import BASE_ID, register_base
from trainer.registry import champion, list_models, promote, register_base_model

pytestmark = pytest.mark.train


def test_base_row_is_registered_once_and_is_champion_only_when_there_is_none(store: Any, tiny_model: Path) -> None:
    record, promoted = register_base(store, tiny_model)
    again, promoted_again = register_base(store, tiny_model)
    assert promoted and not promoted_again and again.model_id == record.model_id == BASE_ID
    rows = list_models(store)
    assert [(m.model_id, m.objective, m.specialization, m.is_champion, m.path) for m in rows] == [
        (BASE_ID, "base", "general", True, str(tiny_model.resolve()))]
    other = register_base_model(store, model_id="base-other", name="other", path=tiny_model)
    promote(store, other.model_id)
    assert register_base(store, tiny_model) == (list_models(store)[0], False)  # a champion exists: left alone
    assert champion(store).model_id == "base-other"  # type: ignore[union-attr]

