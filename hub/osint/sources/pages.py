"""Plain text out of HTML: a feed's summary (a fragment) or a whole article page.

Article pages go through trafilatura, which finds the article's body among menus,
adverts and footers, and its title and date; it runs on the page given, offline (its
date and language helpers ship their data; nothing is downloaded). Feed summaries are small
fragments that feedparser already sanitised: their text is read with lxml.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import lxml.html
from lxml import etree

__all__ = ["Article", "article_of", "fragment_text", "is_html"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_BLOCKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6",
                     "blockquote", "tr", "section", "article", "pre"})
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_LINES = re.compile(r"\n\s*\n+")


def is_html(content_type: str) -> bool:
    return content_type in _HTML_TYPES


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _LINES.sub("\n", "\n".join(lines)).strip()


def fragment_text(fragment: str) -> str:
    """The text of an HTML fragment (a feed entry's summary or content), one line per
    paragraph; plain text comes back tidied."""
    if "<" not in fragment and "&" not in fragment:
        return _tidy(fragment)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return _tidy(re.sub(r"<[^>]*>", " ", fragment))
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.tail = "\n" + (element.tail or "")
    return _tidy(root.text_content())


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    text: str
    published: dt.datetime | None
    url: str | None


def _date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def article_of(page: bytes | str, url: str | None = None) -> Article | None:
    """The article of an HTML page (title, text, date, canonical URL), or None when the
    page has no article text."""
    import trafilatura  # loads lxml's cleaner, jusText and htmldate: only when needed

    document = trafilatura.bare_extraction(
        page, url=url, with_metadata=True, include_comments=False, include_tables=False,
        deduplicate=False, fast=False)
    if not isinstance(document, trafilatura.settings.Document) or \
            not (document.text or "").strip():
        return None
    return Article(title=_tidy(document.title or ""), text=_tidy(document.text or ""),
                   published=_date(document.date), url=document.url or None)
