"""Suite missions: drawn from the families with fixed seeds, run in a fresh sandbox, checked exactly.

A mission's success is decided here, not by a judge's heuristics: the final answer must equal the
expected text (surrounding whitespace and letter case aside) and every file the task asks for must
hold exactly the expected content. The same rule is handed to the pipeline's judge as criteria:
``= <answer>`` and ``file:<path> = <content>`` per expected file (``schemas.criteria``, checked from
the run's file_write calls), so the reward the trainer filters on and the success the evaluation
reports agree: a run that answers right but never writes the file is half done for both.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.missions import AgentConfig, Mission, ToolSpec
from agents.suite.families import FAMILIES
from schemas.criteria import file_criterion

SPLITS: tuple[str, ...] = ("train", "heldout")
SEEDS: dict[str, int] = {"train": 1013, "heldout": 2027}
DEFAULT_COUNTS: dict[str, int] = {"train": 24, "heldout": 12}
"""Missions per family in each split (held-out: 4 families x 12 = 48)."""

_TOOL_CONFIGS: dict[str, dict[str, str]] = {"calculator": {}, "lookup": {"folder": "facts"},
                                            "file_read": {"base_path": "."}, "file_write": {"base_path": "."}}


class SuiteMission(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    family: str
    split: Literal["train", "heldout"]
    objective: str
    answer: str
    files: dict[str, str] = Field(default_factory=dict)
    expect_files: dict[str, str] = Field(default_factory=dict)

    @property
    def criteria(self) -> list[str]:
        """What the judge checks: the exact answer (``=`` marks an exact criterion), then each expected file."""
        return [f"= {self.answer}"] + [file_criterion(path, text) for path, text in self.expect_files.items()]

    def mission(self, sandbox: Path, agent_config: AgentConfig, group_id: str | None = None) -> Mission:
        """The runnable mission, its tools confined to ``sandbox``."""
        family = FAMILIES[self.family]
        cfg = agent_config.model_copy(update={"max_iterations": family.max_iterations})
        return Mission(name=self.name, objective=self.objective, agent_config=cfg,
                       tools=[ToolSpec(name=t, config=_TOOL_CONFIGS[t]) for t in family.tools],
                       success_criteria=self.criteria, group_id=group_id, base_dir=sandbox)


def build_suite(split: str, per_family: int | None = None, families: list[str] | None = None) -> list[SuiteMission]:
    """The split's missions, family by family; the same arguments give the same list every time."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    count = per_family if per_family is not None else DEFAULT_COUNTS[split]
    out: list[SuiteMission] = []
    for name in families or list(FAMILIES):
        if name not in FAMILIES:
            raise ValueError(f"unknown family {name!r}: use one of {', '.join(FAMILIES)}")
        rng = random.Random(f"{SEEDS[split]}:{name}")
        for i in range(count):
            d = FAMILIES[name].draw(rng, split)
            out.append(SuiteMission(name=f"{split}-{name}-{i:03d}", family=name, split=split,  # type: ignore[arg-type]
                                    objective=d.objective, answer=d.answer, files=d.files,
                                    expect_files=d.expect_files))
    return out


def prepare_sandbox(mission: SuiteMission, root: Path) -> Path:
    """A fresh folder holding exactly the mission's starting files."""
    if root.exists():
        shutil.rmtree(root)
    for rel, text in mission.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


def normalise(text: str) -> str:
    return text.strip().lower()


def check_outcome(mission: SuiteMission, final_answer: str | None, sandbox: Path) -> bool:
    """Exact success: the answer, and every expected file's content (trailing newline aside)."""
    if final_answer is None or normalise(final_answer) != normalise(mission.answer):
        return False
    for rel, expected in mission.expect_files.items():
        path = sandbox / rel
        if not path.is_file() or path.read_text(errors="replace").rstrip("\n") != expected:
            return False
    return True
