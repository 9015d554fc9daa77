"""Specialisations: keyword filters on a trajectory's objective (case-insensitive substring match).

A specialised model is trained only on runs whose objective names its kind of work, e.g.
``art specialize research`` keeps objectives containing research / find / investigate / search ...
"""

from __future__ import annotations

KEYWORDS: dict[str, tuple[str, ...]] = {
    "research": ("research", "find", "investigate", "search", "look up", "lookup", "source", "history of",
                 "explore", "discover"),
    "planning": ("plan", "schedule", "organize", "organise", "roadmap", "prioritize", "prioritise",
                 "strategy", "milestone", "timeline"),
    "execution": ("execute", "run ", "deploy", "perform", "carry out", "complete the", "apply",
                  "install", "checklist", "operate"),
    "code": ("code", "implement", "function", "bug", "refactor", "python", "script", "compile",
             "unit test", "api"),
    "analysis": ("analyze", "analyse", "analysis", "evaluate", "metric", "statistic", "trend", "compare",
                 "data", "measure"),
}
SPECIALIZATIONS: tuple[str, ...] = tuple(KEYWORDS)
GENERAL = "general"
"""The specialisation recorded for models trained without a keyword filter."""


def keywords_for(specialization: str) -> list[str]:
    """The objective keywords of ``specialization``; ValueError for an unknown name."""
    try:
        return list(KEYWORDS[specialization])
    except KeyError:
        known = ", ".join(SPECIALIZATIONS)
        raise ValueError(f"unknown specialization {specialization!r}: use one of {known}") from None
