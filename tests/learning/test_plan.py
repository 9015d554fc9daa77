"""What one loop round samples (the families take turns, so a small round still trains every skill) and
which runs it learns from (own lineage unless the fleet teaches; SFT on exact successes only)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from learning.loop import LoopSettings, plan_round, round_fits, window_filter


def _settings(groups: int, families: list[str], objective: str = "sft", teacher: str = "self") -> LoopSettings:
    return LoopSettings(rounds=1, groups=groups, rollouts=3, temperature=0.7, top_p=1.0, explore=0.0, eval_per_family=2,
                        concurrency=2, max_tokens=32, objective=objective, teacher=teacher, promotion_margin=0.0,
                        wait_s=1.0, reward_version="v1", families=families)


def test_families_take_turns_and_each_mission_is_one_group() -> None:
    plan = plan_round("L", 2, _settings(6, ["arith", "lookup", "files", "chain"]))
    assert len(plan) == 6 * 3
    missions = {p.group_id: p.mission for p in plan}
    assert len(missions) == 6 and Counter(p.group_id for p in plan) == Counter({g: 3 for g in missions})
    assert [m.family for m in missions.values()] == ["arith", "lookup", "files", "chain", "arith", "lookup"]
    assert all(m.split == "train" for m in missions.values())
    assert plan == plan_round("L", 2, _settings(6, ["arith", "lookup", "files", "chain"]))  # seeded
    assert {m.name for m in missions.values()} != {p.mission.name for p in plan_round("L", 3, _settings(
        6, ["arith", "lookup", "files", "chain"]))}  # another round draws other missions


def test_a_single_family_round_takes_all_its_groups_from_that_family() -> None:
    plan = plan_round("L", 1, _settings(5, ["files"]))
    assert {p.mission.family for p in plan} == {"files"} and len({p.group_id for p in plan}) == 5


def test_window_is_the_lineage_unless_the_fleet_teaches_and_sft_keeps_exact_successes() -> None:
    since, lineage = datetime(2026, 1, 1, tzinfo=UTC), ["base", "base-r1"]
    own = window_filter(_settings(4, ["arith"]), since, lineage)
    assert (own.models, own.min_success, own.since, own.reward_version, own.top_k_per_group) == (
        lineage, 1.0, since, "v1", 3)
    assert not own.include_evaluation  # held-out runs never teach
    fleet = window_filter(_settings(4, ["arith"], teacher="fleet"), since, lineage)
    assert fleet.models == [] and fleet.min_success == 1.0
    for objective in ("awr", "dpo"):  # advantages and best/worst pairs need the failures too
        assert window_filter(_settings(4, ["arith"], objective=objective), since, lineage).min_success is None


def test_a_round_starts_only_when_the_last_rounds_duration_still_fits_the_budget() -> None:
    assert round_fits(5000.0, None, 1200.0)  # the first round always runs
    assert round_fits(600.0, 600.0, 1200.0) and not round_fits(601.0, 600.0, 1200.0)
    assert round_fits(1e9, 1e9, None)  # no budget: every round


def test_a_loop_warns_when_a_slow_llm_call_would_outlast_the_streams_idle_timeout() -> None:
    from config.settings import ArtConfig
    from learning.session import idle_timeout_warning

    default = ArtConfig()  # idle 300 s, call 900 s: a loaded server closes runs half-done
    assert idle_timeout_warning(default) == (
        "stream.session_idle_timeout_s (300 s) is not above learning.request_timeout_s (900 s): a run waiting on a "
        "slow LLM call is closed as idle and judged half-done; raise it (ART_STREAM_SESSION_IDLE_TIMEOUT_S=960) "
        "for the stack the loop runs on")
    assert idle_timeout_warning(ArtConfig.model_validate({"stream": {"session_idle_timeout_s": 960}})) is None


def test_a_round_continues_an_adapter_champion_on_its_own_runs_and_starts_fresh_from_the_base() -> None:
    from learning.loop import CONTINUE_TRAINING, round_training
    from trainer.registry import BASE_OBJECTIVE, ModelRecord

    since, lineage = datetime(2026, 1, 1, tzinfo=UTC), ["base", "m-1"]

    def record(model_id: str, objective: str) -> ModelRecord:
        return ModelRecord(model_id=model_id, name=model_id, base_model="/models/base", objective=objective,
                           window_id="w", path=f"/registry/{model_id}", created_at=since, updated_at=since)

    fresh = round_training(_settings(4, ["arith"]), since, lineage, record("base", BASE_OBJECTIVE))
    assert (fresh.window, fresh.init_adapter, fresh.overrides) == (window_filter(_settings(4, ["arith"]), since,
                                                                                 lineage), "", {})
    cont = round_training(_settings(4, ["arith"]), since, lineage, record("m-1", "sft"))
    assert cont.init_adapter == "/registry/m-1/adapter" and cont.overrides == CONTINUE_TRAINING
    assert cont.window.models == ["m-1"] and cont.window.since == since and cont.window.min_success == 1.0
    fleet = round_training(_settings(4, ["arith"], teacher="fleet"), since, lineage, record("m-1", "sft"))
    assert fleet.window.models == [] and fleet.init_adapter == "/registry/m-1/adapter"
