"""Reading scores out of LLM text: strict about what counts as a score, never a silent default.

Accepted forms (case-insensitive): JSON ``{"score": 0.7}`` or ``{"task_completion": 0.8, ...}``
(also inside a ```json fence or surrounded by prose), ``score: 0.7`` / ``Score: 7`` / ``score = 7/10``,
and bare ``7/10``, ``70%``, ``0.7``. Scale: a fraction ``a/b`` is a/b; a percentage is /100;
a plain number v is v when 0 <= v <= 1, v/10 when 1 < v <= 10, v/100 when 10 < v <= 100
(so ``Score: 1`` means 1.0, not 0.1). Anything else raises ``ScoreParseError`` naming the text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from judges.contract import METRICS
from judges.errors import ScoreParseError

_NUM = r"[-+]?\d+(?:\.\d+)?"
_SCALED = rf"(?P<num>{_NUM})\s*(?:/\s*(?P<den>{_NUM})|(?P<pct>%))?"
_LABELLED = re.compile(rf"\bscore\b\s*(?:is\s*)?[:=]?\s*{_SCALED}", re.IGNORECASE)
_BARE = re.compile(rf"\s*{_SCALED}\s*\.?\s*")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def normalize(value: float, text: str) -> float:
    """Map a plain number onto [0, 1] by the scale rule in the module docstring."""
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ScoreParseError(text, f"score {value!r} is not a non-negative number")
    if value <= 1:
        return float(value)
    if value <= 10:
        return value / 10
    if value <= 100:
        return value / 100
    raise ScoreParseError(text, f"score {value} is above 100")


def _scaled(match: re.Match[str], text: str) -> float:
    num = float(match["num"])
    if match["den"] is not None:
        den = float(match["den"])
        if den <= 0 or num < 0 or num > den:
            raise ScoreParseError(text, f"fraction {match['num']}/{match['den']} is not within 0..1")
        return num / den
    if match["pct"]:
        if not 0 <= num <= 100:
            raise ScoreParseError(text, f"percentage {num}% is not within 0..100")
        return num / 100
    return normalize(num, text)


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or the outermost {...} span."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("no JSON value found")


def _json_object(text: str) -> dict[str, Any] | None:
    if "{" not in text:
        return None
    try:
        value = extract_json(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def score_value(value: Any, text: str) -> float:
    """A JSON value as a score: a number by the scale rule, or a string in any accepted form."""
    if isinstance(value, bool):
        raise ScoreParseError(text, f"score {value!r} is a boolean")
    if isinstance(value, int | float):
        return normalize(float(value), text)
    if isinstance(value, str):
        return parse_score(value)
    raise ScoreParseError(text, f"score {value!r} is not a number")


def parse_score(text: str) -> float:
    """One score in [0, 1] from ``text``; raises ``ScoreParseError`` naming the text otherwise."""
    obj = _json_object(text)
    if obj is not None:
        key = next((k for k in obj if k.lower() == "score"), None)
        if key is None:
            raise ScoreParseError(text, "JSON object has no 'score' key")
        return score_value(obj[key], text)
    labelled = _LABELLED.search(text)
    if labelled:
        return _scaled(labelled, text)
    bare = _BARE.fullmatch(text)
    if bare:
        return _scaled(bare, text)
    raise ScoreParseError(text, "no score found")


def parse_metric_scores(text: str, names: Iterable[str] = METRICS) -> dict[str, float]:
    """Every named metric from ``text``: a JSON object with each name, or ``name: score`` lines.

    A JSON value may itself be ``{"score": x}``. A missing metric raises ``ScoreParseError`` naming it.
    """
    names = list(names)
    obj = _json_object(text)
    if obj is not None:
        lowered = {k.lower(): v for k, v in obj.items()}
        missing = [n for n in names if n not in lowered]
        if missing:
            raise ScoreParseError(text, f"JSON object lacks {', '.join(missing)}")
        out: dict[str, float] = {}
        for n in names:
            value = lowered[n]
            if isinstance(value, dict) and "score" in value:
                value = value["score"]
            out[n] = score_value(value, text)
        return out
    out = {}
    for n in names:
        found = re.search(rf"\b{re.escape(n)}\b\s*[:=]\s*{_SCALED}", text, re.IGNORECASE)
        if found is None:
            raise ScoreParseError(text, f"no score for {n}")
        out[n] = _scaled(found, text)
    return out
