"""RSS and Atom feeds -> entries (feedparser).

feedparser reads the bytes it is given (never a URL: it is handed a stream, so it opens no
connection or file itself), RSS 0.9x/1.0/2.0 and Atom alike, and sanitises the HTML of
summaries. A document that is not a feed, or a feed that is not well-formed XML, is
:class:`~hub.osint.sources.web.Refused` with the reason; the one lenient case is an
undefined entity (``&nbsp;`` in RSS), common and harmless, which feedparser reads through.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model import Entry
from .pages import fragment_text
from .web import Refused

__all__ = ["FEED_TYPES", "Feed", "is_feed_type", "read_feed"]

#: What a feed is asked for with (``Accept``).
FEED_TYPES = ("application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
              "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1")


def is_feed_type(content_type: str) -> bool:
    """Whether an answer of this media type may be a feed: any XML type (servers label
    feeds text/xml, application/xml, application/rss+xml...)."""
    return content_type == "" or content_type.endswith("xml") or "+xml" in content_type


@dataclass(frozen=True, slots=True)
class Feed:
    title: str
    language: str | None
    entries: list[Entry]


def _when(entry: Mapping[str, Any]) -> dt.datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if isinstance(value, time.struct_time):
            try:
                return dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
            except (OverflowError, ValueError, OSError):
                return None
    return None


def _language(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip().lower().replace("_", "-").split("-")[0][:8]
    return None


def _body(entry: Mapping[str, Any]) -> str:
    """The longest of the entry's contents and summary, as text."""
    texts = [c.get("value", "") for c in entry.get("content", []) if isinstance(c, dict)]
    texts.append(entry.get("summary", "") or "")
    return max((fragment_text(t) for t in texts if t), key=len, default="")


def read_feed(data: bytes, *, url: str, content_type: str = "") -> Feed:
    """The entries of a feed document (module docstring); ``url`` resolves relative links."""
    import feedparser  # loaded on the first fetch, not with the hub

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
    problem = parsed.get("bozo_exception")
    if not parsed.get("version"):
        what = f": {problem}" if problem is not None and _is_xml_error(problem) else ""
        raise Refused(f"not an RSS or Atom feed{what}")
    if problem is not None and _is_xml_error(problem) and \
            "undefined entity" not in str(problem):
        line = getattr(problem, "getLineNumber", lambda: None)()
        where = f" (line {line})" if line else ""
        raise Refused(f"malformed feed: {problem.getMessage()}{where}")
    feed_language = _language(parsed.feed.get("language"))
    entries = []
    for n, entry in enumerate(parsed.entries, 1):
        link = entry.get("link") or None
        content = [c for c in entry.get("content", []) if isinstance(c, dict)]
        language = _language(content[0].get("language")) if content else None
        entries.append(Entry(
            ref=link or f"{url} entry {n}",
            title=fragment_text(entry.get("title", "") or ""),
            text=_body(entry), url=link, published=_when(entry),
            language=language or _language(entry.get("language")) or feed_language,
            complete=False))
    return Feed(title=fragment_text(parsed.feed.get("title", "") or ""),
                language=feed_language, entries=entries)


def _is_xml_error(problem: BaseException) -> bool:
    return hasattr(problem, "getMessage") and hasattr(problem, "getLineNumber")
