"""Configuration picks the implementation; the package imports only schemas (no torch, no streams)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import ArtConfig
from judges import HeuristicJudge, HeuristicRuler, JudgeError, LLMJudge, LLMRuler, build_judge, build_ruler

ROOT = Path(__file__).resolve().parents[2]


def config(**judge: object) -> ArtConfig:
    return ArtConfig.model_validate({"judge": judge, "models": {"llm_base_url": "http://127.0.0.1:9/v1",
                                                                 "llm_model": "m", "llm_timeout_s": 3}})


def test_defaults_are_heuristic() -> None:
    judge, ruler = build_judge(ArtConfig()), build_ruler(ArtConfig())
    assert isinstance(judge, HeuristicJudge) and isinstance(ruler, HeuristicRuler)
    assert (judge.name, judge.version, judge.weights.values) == ("heuristic", "1", (0.4, 0.2, 0.2, 0.1, 0.1))
    assert ruler.reward_version == "ruler-heuristic@1"


def test_llm_choices() -> None:
    judge = build_judge(config(name="llm", version="2"))
    assert isinstance(judge, LLMJudge) and judge.client.timeout_s == 3
    assert judge.client.url == "http://127.0.0.1:9/v1/chat/completions"
    ruler = build_ruler(config(reward_version="ruler-llm@4"))
    assert isinstance(ruler, LLMRuler) and ruler.reward_version == "ruler-llm@4"


def test_unknown_or_unconfigured() -> None:
    with pytest.raises(JudgeError, match="unknown judge 'gpt'"):
        build_judge(config(name="gpt"))
    with pytest.raises(JudgeError, match="unknown reward_version 'v1'"):
        build_ruler(config(reward_version="v1"))
    with pytest.raises(JudgeError, match="no LLM endpoint configured"):
        build_judge(ArtConfig.model_validate({"judge": {"name": "llm"}}))


def test_imports_only_schemas() -> None:
    code = ("import sys, judges; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'streams', 'consumers', 'trainer', 'torch', 'faust', 'aiokafka'}); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
