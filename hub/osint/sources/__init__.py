"""Sources: news feeds and folders of saved articles, fetched on a schedule into the
collection.

::

    model      SourceSpec (what the operator configures, checked whole), Source,
               FetchRecord, Entry (one candidate article)
    service    Sources: add, list, change, enable/disable, remove; the fetch records; the
               schedule shared by every poller (claim_due)
    web        Web: polite, bounded HTTP (per-host pace, allowed hosts, size and
               decompression limits, timeouts, conditional requests)
    feeds      RSS/Atom -> entries (feedparser)
    pages      HTML -> text (trafilatura for article pages, lxml for summaries)
    folders    saved feeds, pages, .txt, .json and .csv files -> entries, each file once
    fetcher    Fetcher: one fetch of one source -> Collection.add per new article, and
               its record in osint_fetches (outcome, status, counts, skipped + reasons)
    poller     Poller: fetch what is due, in the hub (TAHUB_COLLECT) or `tahub collect`

See docs/osint.md (Sources).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fetcher import Fetcher, Limits
from .model import LANGUAGES, Entry, FetchRecord, Skip, Source, SourceSpec
from .poller import Poller
from .service import Sources
from .web import Hosts, Pacer, Refused, Web

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hub.osint.collection import Collection
    from hub.settings import Settings

__all__ = ["LANGUAGES", "Entry", "FetchRecord", "Fetcher", "Hosts", "Limits", "Pacer",
           "Poller", "Refused", "Skip", "Source", "SourceSpec", "Sources", "Web",
           "fetcher_for"]


def fetcher_for(engine: Engine, settings: Settings,
                collection: Collection | None = None) -> Fetcher:
    """The process's :class:`Fetcher` from the hub's settings (``TAHUB_FETCH_*``): one
    :class:`Web` (its per-host pace shared by every fetch) and ``collection`` (default: a
    new one, its tagger loaded on the first article)."""
    from hub import __version__
    from hub.osint.collection import Collection

    web = Web(user_agent=settings.fetch_user_agent
              or f"tahub/{__version__} (+{settings.public_url})",
              timeout=settings.fetch_timeout_seconds, max_bytes=settings.fetch_max_bytes,
              max_decoded=settings.fetch_max_decoded_bytes,
              pacer=Pacer(settings.fetch_host_interval_seconds))
    return Fetcher(engine, collection or Collection(engine), web,
                   limits=Limits(max_entries=settings.fetch_max_entries,
                                 short_text=settings.fetch_short_text,
                                 max_file_bytes=settings.fetch_max_decoded_bytes))
