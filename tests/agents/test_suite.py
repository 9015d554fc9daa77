"""The built-in suite: fixed, disjoint splits; every mission solvable with its tools; success checked exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agents.missions import AgentConfig
from agents.runner import run_mission
from agents.suite import FAMILIES, build_suite, check_outcome, prepare_sandbox
from agents.suite.missions import DEFAULT_COUNTS
from tests.agents.support import MemoryOpener
from tests.learning.support import StandIn, oracle, wrong

NUMBER = re.compile(r"\d+")


def template(objective: str) -> str:
    """The phrasing with numbers and names blanked out."""
    return re.sub(r"\b(data|out)/\w+\.txt\b", "<file>", NUMBER.sub("<n>", objective))


def test_sizes_families_and_determinism() -> None:
    held, train = build_suite("heldout"), build_suite("train")
    assert len(FAMILIES) >= 4 and {m.family for m in held} == set(FAMILIES) == {m.family for m in train}
    assert len(held) == 4 * DEFAULT_COUNTS["heldout"] == 48 and len(train) == 4 * DEFAULT_COUNTS["train"] == 96
    assert build_suite("heldout") == held  # fixed seeds: the same missions every time
    assert len({m.name for m in held + train}) == len(held) + len(train)
    assert {FAMILIES[f].tool_calls for f in FAMILIES} >= {1, 2, 3}  # single- and multi-step tasks


def test_splits_are_disjoint_in_phrasing_numbers_and_names() -> None:
    held, train = build_suite("heldout"), build_suite("train")
    assert not {m.objective for m in held} & {m.objective for m in train}
    for family in FAMILIES:
        h = [m for m in held if m.family == family]
        t = [m for m in train if m.family == family]
        assert not {template(m.objective) for m in h} & {template(m.objective) for m in t}, family
        h_numbers = {int(n) for m in h for n in NUMBER.findall(m.objective)}
        t_numbers = {int(n) for m in t for n in NUMBER.findall(m.objective)}
        assert h_numbers and t_numbers and not h_numbers & t_numbers, family
    h_files = {p for m in held for p in [*m.files, *m.expect_files] if p.startswith(("data/", "out/"))}
    t_files = {p for m in train for p in [*m.files, *m.expect_files] if p.startswith(("data/", "out/"))}
    assert not h_files & t_files
    h_items = {line.split(":")[0] for m in held for line in m.files.get("facts/prices.txt", "").splitlines()}
    t_items = {line.split(":")[0] for m in train for line in m.files.get("facts/prices.txt", "").splitlines()}
    assert h_items and t_items and not h_items & t_items


def test_no_single_operation_passes_a_heldout_family_that_reads_a_number() -> None:
    """A policy that always multiplies (or always adds) what it read must not score full marks on held-out."""
    ops = {"add": lambda v, k: v + k, "subtract": lambda v, k: v - k, "multiply": lambda v, k: v * k}
    for family in ("files", "chain"):
        used: dict[str, int] = {}
        for m in build_suite("heldout", families=[family]):
            v = int(next(iter(m.files.values())))
            k = int(NUMBER.findall(m.objective.replace(next(iter(m.files)), ""))[0])
            fits = [name for name, op in ops.items() if str(op(v, k)) == m.answer]
            assert len(fits) == 1, (m.objective, fits)
            used[fits[0]] = used.get(fits[0], 0) + 1
        assert len(used) >= 2 and max(used.values()) <= 9, (family, used)  # at most 9 of 12 for any one


def test_check_is_exact(tmp_path: Path) -> None:
    chain = next(m for m in build_suite("heldout") if m.family == "chain")
    box = prepare_sandbox(chain, tmp_path / "box")
    dst = next(iter(chain.expect_files))
    assert not check_outcome(chain, chain.answer, box)  # the file was not written
    (box / dst).parent.mkdir(parents=True, exist_ok=True)
    (box / dst).write_text(chain.answer + "\n")
    assert check_outcome(chain, f"  {chain.answer} ", box)
    for near in (chain.answer + ".", chain.answer + "0", f"{chain.answer} coins", "", None):
        assert not check_outcome(chain, near, box), near
    (box / dst).write_text(chain.answer + "1")
    assert not check_outcome(chain, chain.answer, box)
    assert chain.criteria == [f"= {chain.answer}", f"file:{dst} = {chain.answer}"]


@pytest.mark.parametrize("split", ["train", "heldout"])
async def test_every_mission_is_solvable_with_its_tools(split: str, tmp_path: Path) -> None:
    """The runner + real tools + an agent that says the right lines succeed on every mission; one that
    answers at once fails every one."""
    missions = build_suite(split, per_family=3)
    with StandIn(missions, lambda model: oracle if model == "good" else wrong) as server:
        from agents.llm import OpenAIChatClient

        async with OpenAIChatClient(server.base_url, "good") as llm:
            for model in ("good", "bad"):
                for m in missions:
                    box = prepare_sandbox(m, tmp_path / model / m.name)
                    mission = m.mission(box, AgentConfig(model=model, prompt_style="compact"))
                    result = await run_mission(mission, llm, MemoryOpener(), mission.toolbox())
                    assert check_outcome(m, result.final_answer, box) == (model == "good"), (model, m.name)
                    if model == "good":
                        assert result.errors == 0 and len(result.tools_used) == FAMILIES[m.family].tool_calls
                        written = {p: (box / p).read_text() for p in m.expect_files}
                        assert written == m.expect_files
