"""One root error for the judges package; each names the problem and the text that caused it."""

from __future__ import annotations


def preview(text: str, limit: int = 200) -> str:
    """The first ``limit`` characters of ``text``, so error messages stay readable."""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


class JudgeError(Exception):
    """Root of every error raised by ``judges``: endpoint failures, unreadable answers, bad input."""


class AnswerError(JudgeError):
    """An LLM answer (or any score text) that cannot be used; keeps the text and the reason."""

    what = "unusable answer"

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"{self.what} ({reason}): {preview(text)!r}")


class ScoreParseError(AnswerError):
    """No score could be read from the text; never replaced by a silent default."""

    what = "cannot read a score"


class RulerResponseError(AnswerError):
    """A RULER answer that is not valid JSON or does not score every trajectory exactly once."""

    what = "invalid RULER answer"
