"""Is a cue negated or speculative? A NegEx-style test on the reader's hits.

A cue is *negated* when a trigger of group ``neg_before`` ends at most ``window`` tokens
before it, or one of ``neg_after`` begins at most ``window`` tokens after it, in the same
sentence and with no scope terminator (but, however, which...) in between. It is
*speculative* when a ``speculation`` trigger precedes it the same way ("investigating
whether", "at risk of"). Neither is tagged: the annotation rules tag stated facts only.
"""

from __future__ import annotations

from .reader import Reading

__all__ = ["Scope"]


class Scope:
    """Negation and speculation tests over one reading."""

    def __init__(self, reading: Reading, window: int) -> None:
        self._reading = reading
        self._window = window
        self._terminators = sorted(h.start for h in reading.found("terminator"))

    def _terminated(self, left: int, right: int) -> bool:
        """A scope terminator lies within tokens [left, right)."""
        return any(left <= t < right for t in self._terminators)

    def _before(self, group: str, start: int, window: int) -> bool:
        reading = self._reading
        sentence = reading.sentence_of[start]
        for hit in reading.found(group):
            if hit.end > start:
                break
            if start - hit.end <= window and reading.sentence_of[hit.start] == sentence \
                    and not self._terminated(hit.end, start):
                return True
        return False

    def negated(self, start: int, end: int) -> bool:
        """The cue at tokens [start, end) is negated."""
        if self._before("neg_before", start, self._window):
            return True
        reading = self._reading
        sentence = reading.sentence_of[start]
        for hit in reading.found("neg_after"):
            if hit.start >= end and hit.start - end <= self._window and \
                    reading.sentence_of[hit.start] == sentence and \
                    not self._terminated(end, hit.start):
                return True
        return False

    def speculative(self, start: int) -> bool:
        """The cue starting at token ``start`` is only supposed, feared or prevented."""
        return self._before("speculation", start, self._window + 2)

    def stated(self, start: int, end: int) -> bool:
        """Neither negated nor speculative."""
        return not self.negated(start, end) and not self.speculative(start)
