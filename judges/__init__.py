"""Judging finished trajectories: per-trajectory performance judges and group-relative RULER rewards.

Pure logic plus HTTP clients; imports ``schemas`` only, so streams/, consumers/ and trainer/ can
all use it. The heuristic implementations need no network; the LLM ones talk to any
OpenAI-compatible endpoint and cache answers by content hash.
"""

from judges.cache import JudgeCache, content_hash
from judges.contract import (
    DEFAULT_WEIGHTS,
    METRICS,
    AsyncJudge,
    Judge,
    JudgeWeights,
    MetricScores,
    judgment_id,
    reward_id,
)
from judges.errors import AnswerError, JudgeError, RulerResponseError, ScoreParseError
from judges.factory import build_judge, build_ruler
from judges.heuristic import HeuristicJudge, Measurement, measure
from judges.llm import ChatClient, LLMJudge
from judges.parsing import parse_metric_scores, parse_score
from judges.ruler import RULER_WEIGHTS, Components, HeuristicRuler, LLMRuler, Ruler, advantages

__all__ = [
    "DEFAULT_WEIGHTS",
    "METRICS",
    "RULER_WEIGHTS",
    "AnswerError",
    "AsyncJudge",
    "ChatClient",
    "Components",
    "HeuristicJudge",
    "HeuristicRuler",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "JudgeWeights",
    "LLMJudge",
    "LLMRuler",
    "Measurement",
    "MetricScores",
    "Ruler",
    "RulerResponseError",
    "ScoreParseError",
    "advantages",
    "build_judge",
    "build_ruler",
    "content_hash",
    "judgment_id",
    "measure",
    "parse_metric_scores",
    "parse_score",
    "reward_id",
]
