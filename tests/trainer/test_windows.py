from __future__ import annotations

from typing import Any

import pytest

from tests.trainer.rows import insert_runs
from trainer import synthetic
from trainer.windows import WindowFilter, load_window, pull_window, split_window

pytestmark = pytest.mark.train


def test_duplicates_never_count(filled_store: Any) -> None:
    window = pull_window(filled_store, WindowFilter())
    assert len(window.trajectories) == 48
    assert len({t.session_id for t in window.trajectories}) == 48
    assert window.group_count == 12
    assert {t.group_size for t in window.trajectories} == {4}  # from the rewards rows
    assert all(len(t.steps) == len({s.step_number for s in t.steps}) for t in window.trajectories)


def test_filters_reward_topk_agent_and_specialisation(store: Any) -> None:
    insert_runs(store, synthetic.runs(4, 4, seed=1, kind="research"))
    insert_runs(store, synthetic.runs(3, 4, seed=2, kind="code"))
    good = pull_window(store, WindowFilter(min_reward=0.7))
    assert good.trajectories and all(t.total >= 0.7 for t in good.trajectories)
    top1 = pull_window(store, WindowFilter(top_k_per_group=1))
    assert top1.group_count == len(top1.trajectories) == 7
    best = {t.group_id: t.total for t in pull_window(store, WindowFilter()).trajectories
            if t.total == max(x.total for x in pull_window(store, WindowFilter()).trajectories
                              if x.group_id == t.group_id)}
    assert {t.group_id: t.total for t in top1.trajectories} == best
    code = pull_window(store, WindowFilter(specialization="code"))
    assert len(code.trajectories) == 12 and all("code" in t.objective.lower() for t in code.trajectories)
    agent = pull_window(store, WindowFilter(agent="research-agent"))
    assert {t.agent_name for t in agent.trajectories} == {"research-agent"}
    assert pull_window(store, WindowFilter(reward_version="other@9")).trajectories == []


def test_window_is_recorded_and_reproducible(filled_store: Any) -> None:
    window = pull_window(filled_store, WindowFilter(min_reward=0.7))
    row = filled_store.query("SELECT trajectory_count, step_count, group_count, query FROM training_windows "
                             "WHERE window_id = {id:String}", parameters={"id": window.window_id}).first_row
    assert row[:3] == (len(window.trajectories), window.step_count, window.group_count)
    assert "FINAL" in row[3]
    insert_runs(filled_store, synthetic.runs(2, 4, seed=7))  # later data must not leak into the old window
    again = load_window(filled_store, window.window_id)
    assert again.trajectories == window.trajectories


def test_split_keeps_groups_whole(filled_store: Any) -> None:
    train, held = split_window(pull_window(filled_store, WindowFilter()), 0.25)
    assert held.trajectories and train.trajectories
    assert not {t.group_key for t in train.trajectories} & {t.group_key for t in held.trajectories}
