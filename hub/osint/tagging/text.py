"""Small text helpers shared by the tagger's modules: folding for matching, and apostrophes.

Matching ignores case and accents ("Nigéria" is "Nigeria", "MÉXICO" is "México"), so every
phrase of the lexicons and every token of a text is compared in its *folded* form.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["APOSTROPHES", "fold", "same_length_clean", "squash"]

# one character for another, so that offsets into the cleaned text are offsets into the
# original (typographic apostrophes and quotes, non-breaking and other spaces)
APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'",
                             "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
                             "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2013": "-",
                             "\u2011": "-", "\u2010": "-"})


def same_length_clean(text: str) -> str:
    """``text`` with typographic apostrophes, quotes, dashes and spaces made plain, one
    character for one (so every offset still points at the same place)."""
    return text.translate(APOSTROPHES)


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lower case, no accents, plain apostrophes: the form in which phrases are compared.

    >>> fold("Côte d\u2019Ivoire")
    "cote d'ivoire"
    """
    lowered = text.translate(APOSTROPHES).lower()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def squash(text: str) -> str:
    """The folded letters and digits of ``text``, nothing else: the key under which place
    names are looked up, the same however a tokenizer splits them ("Côte d'Ivoire",
    "U.K." and "UK" are "cotedivoire" and "uk").

    >>> squash("Côte d\u2019Ivoire")
    'cotedivoire'
    """
    return "".join(ch for ch in fold(text) if ch.isalnum())
