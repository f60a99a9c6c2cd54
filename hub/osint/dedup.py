"""Near-duplicate texts: the same incident told by several outlets, or the same wire story.

Each item's text (title and body, folded: case, accents, punctuation) is cut into
overlapping shingles of :data:`SHINGLE` words, and a MinHash of :data:`PERMUTATIONS`
permutations (datasketch) estimates the Jaccard similarity of two items' shingle sets. An
LSH index (datasketch's ``MinHashLSH``) finds, for a new item, the earlier items whose
estimated similarity is likely above :data:`THRESHOLD`; the most similar of them, if its
estimate is at least the threshold, is the item's near-duplicate, and the new item joins
that item's incident (every source is kept: an incident lists all its items).

An exact copy (the same folded text) is caught before this by the item's fingerprint
(:func:`fingerprint`, a SHA-256), so that the same article fetched twice is not even stored.

Items that tell the same incident in different words (two newspapers' own reports) share
few shingles; the reviewers merge those incidents (:mod:`hub.osint.collection`), helped by
the queue's suggestions of incidents with the same tags.

Privacy: a crowd report's text is stored only encrypted, but its fingerprint and MinHash are
stored in the clear (to find its duplicates without decrypting every report). Both are
one-way: they can confirm a guessed text, never reveal one.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Iterable

from datasketch import LeanMinHash, MinHash, MinHashLSH

__all__ = ["PERMUTATIONS", "SHINGLE", "THRESHOLD", "NearDuplicates", "fingerprint",
           "signature"]

SHINGLE = 4
PERMUTATIONS = 128
THRESHOLD = 0.5
_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return _WORD.findall(plain)


def fingerprint(title: str, text: str) -> str:
    """The SHA-256 (hex) of the item's folded words: the same story again, whatever its
    spacing, case, accents or punctuation, has the same fingerprint."""
    return hashlib.sha256(" ".join(_words(f"{title}\n{text}")).encode()).hexdigest()


def signature(title: str, text: str) -> bytes:
    """The item's MinHash, serialised (datasketch's ``LeanMinHash`` form)."""
    words = _words(f"{title}\n{text}")
    shingles = {" ".join(words[i:i + SHINGLE]).encode()
                for i in range(max(len(words) - SHINGLE + 1, 1))}
    minhash = MinHash(num_perm=PERMUTATIONS)
    minhash.update_batch(list(shingles))
    lean = LeanMinHash(minhash)
    out = bytearray(lean.bytesize())
    lean.serialize(out)
    return bytes(out)


class NearDuplicates:
    """The LSH index of the items' signatures, item id -> incident id (module docstring).

    Built from the stored items on first use and kept up to date by :meth:`add`; safe to
    share between threads.
    """

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self._threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=PERMUTATIONS)
        self._minhashes: dict[str, LeanMinHash] = {}
        self._incident: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._minhashes)

    def load(self, rows: Iterable[tuple[str, str, bytes]]) -> None:
        """Add (item id, incident id, signature) rows, e.g. every stored item's."""
        for item, incident, sig in rows:
            self.add(item, incident, sig)

    def add(self, item: str, incident: str, sig: bytes) -> None:
        minhash = LeanMinHash.deserialize(sig)
        with self._lock:
            if item in self._minhashes:
                self._incident[item] = incident
                return
            self._lsh.insert(item, minhash)
            self._minhashes[item] = minhash
            self._incident[item] = incident

    def move(self, incident: str, into: str) -> None:
        """Every item of ``incident`` now belongs to ``into`` (a reviewer merged them)."""
        with self._lock:
            for item, of in self._incident.items():
                if of == incident:
                    self._incident[item] = into

    def match(self, sig: bytes) -> tuple[str, str, float] | None:
        """The most similar earlier item (item id, its incident, estimated Jaccard
        similarity) if that similarity is at least the threshold, else None."""
        minhash = LeanMinHash.deserialize(sig)
        with self._lock:
            scored = [(self._minhashes[c].jaccard(minhash), c)
                      for c in self._lsh.query(minhash)]
            if not scored:
                return None
            similarity, item = max(scored)
            if similarity < self._threshold:
                return None
            return item, self._incident[item], similarity
