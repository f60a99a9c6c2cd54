"""Which language an item is written in, identified locally with py3langid.

py3langid ships its model inside the package (a naive Bayes model over byte n-grams, loaded
from ``py3langid/data``): nothing is downloaded. It is restricted to the widely written
languages of news (:data:`CANDIDATES`), so that an English text about Nigeria is not taken
for Nigerian Pidgin, and the declared language settles what a short text cannot.
"""

from __future__ import annotations

from typing import Any

from .lexicon import SUPPORTED_LANGUAGES
from .tags import LanguageCheck

__all__ = ["CANDIDATES", "LanguageIdentifier"]

# languages py3langid may answer (ISO 639-1): major written languages of news and reports
CANDIDATES = (
    "en", "fr", "es", "pt", "it", "de", "nl", "ro", "pl", "cs", "sk", "hu", "sv", "da", "no",
    "fi", "ru", "uk", "bg", "sr", "hr", "bs", "sl", "sq", "el", "tr", "ar", "fa", "ur", "hi",
    "bn", "ne", "th", "vi", "id", "ms", "tl", "zh", "ja", "ko", "sw", "am", "he", "lt", "lv",
    "et", "ka", "hy", "az", "kk", "uz", "mn", "km", "lo", "my", "si", "ta", "te", "ml", "pa",
    "ha", "yo", "so", "ca", "gl", "eu",
)
# below this many letters the text says too little: the declared language stands
_SHORT = 40
# an unsupported language is reported only when py3langid is at least this sure of it
_SURE = 0.9


class LanguageIdentifier:
    """py3langid's model, loaded once (about a second)."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as _Model

        model = _Model.from_model_file(MODEL_FILE, norm_probs=True)
        model.set_languages([lang for lang in CANDIDATES if lang in model.nb_classes])
        self._model: Any = model

    def check(self, text: str, declared: str) -> LanguageCheck:
        """Identify the language of ``text`` and decide which lexicon tags it.

        The identified language is used when it is supported; an unsupported language that
        py3langid is sure of (on a text long enough) is reported and not tagged; otherwise
        the declared language is used when it is supported.
        """
        declared = declared.lower().split("-")[0]
        letters = sum(ch.isalpha() for ch in text)
        detected, confidence = self._model.classify(text) if letters else (None, 0.0)
        confidence = float(confidence)
        declared_ok = declared in SUPPORTED_LANGUAGES
        if detected in SUPPORTED_LANGUAGES and (letters >= _SHORT or not declared_ok):
            return LanguageCheck(declared=declared, detected=detected, confidence=confidence,
                                 supported=True, used=detected)
        if detected is not None and detected not in SUPPORTED_LANGUAGES and \
                confidence >= _SURE and letters >= _SHORT:
            return LanguageCheck(declared=declared, detected=detected, confidence=confidence,
                                 supported=False, used=None)
        return LanguageCheck(declared=declared, detected=detected, confidence=confidence,
                             supported=declared_ok, used=declared if declared_ok else None)
