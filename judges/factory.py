"""Pick the judge and the RULER implementation from configuration (one code path, config decides).

``[art.judge] name`` selects the judge: "heuristic" (default) or "llm" (needs
``[art.models] llm_base_url``). ``reward_version`` selects RULER by its prefix: "ruler-heuristic@…"
or "ruler-llm@…", so the version stamped on every reward also says which code made it.
"""

from __future__ import annotations

from config.settings import ArtConfig
from judges.cache import JudgeCache
from judges.errors import JudgeError
from judges.heuristic import HeuristicJudge
from judges.llm import LLMJudge
from judges.ruler import HeuristicRuler, LLMRuler


def build_judge(config: ArtConfig, *, cache: JudgeCache | None = None) -> HeuristicJudge | LLMJudge:
    name = config.judge.name
    if name == "heuristic":
        return HeuristicJudge.from_config(config.judge)
    if name == "llm":
        return LLMJudge.from_config(config, cache=cache)
    raise JudgeError(f"unknown judge {name!r} in [art.judge] name: expected 'heuristic' or 'llm'")


def build_ruler(config: ArtConfig, *, cache: JudgeCache | None = None) -> HeuristicRuler | LLMRuler:
    version = config.judge.reward_version
    if version.startswith("ruler-heuristic"):
        return HeuristicRuler.from_config(config)
    if version.startswith("ruler-llm"):
        return LLMRuler.from_config(config, cache=cache)
    raise JudgeError(f"unknown reward_version {version!r}: expected 'ruler-heuristic@N' or 'ruler-llm@N'")
