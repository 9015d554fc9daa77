"""Incremental detokenization with stop strings, one instance per generated sequence.

Streaming must never send text it may have to take back: a trailing U+FFFD (a multi-byte character
cut between tokens) and a tail that could still grow into a stop string are held until the next
token decides. Stop strings are cut from the text, as OpenAI does; the token ids keep every token
the model produced, including the one that completed the stop string.
"""

from __future__ import annotations

from collections.abc import Callable

Decode = Callable[[list[int]], str]


class TextTracker:
    """Text of one sequence so far: what may be emitted now, and whether a stop string ended it."""

    def __init__(self, decode: Decode, stops: list[str]) -> None:
        self.decode = decode
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def update(self, ids: list[int]) -> str:
        """Decode ``ids`` (the whole completion so far); returns the newly emittable text."""
        self.text = self.decode(ids)
        if self.stops:
            start = max(0, self.emitted - self.hold)
            hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                self.text = self.text[:min(hits)]
                self.stopped = True
                return self._emit(len(self.text))
        safe = len(self.text.rstrip("\ufffd")) - self.hold
        return self._emit(safe)

    def finish(self) -> str:
        """Whatever is still held back once generation ends."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out
