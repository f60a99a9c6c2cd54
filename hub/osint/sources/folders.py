"""Folder sources: saved feeds and articles on a disk, for closed networks.

Every file under the folder (sub-folders included, hidden ones not) is read by its suffix::

    .xml .rss .atom    a saved feed: its entries (hub.osint.sources.feeds); no page is
                       fetched, a summary is collected as it is
    .html .htm         a saved article page: text, title and date by trafilatura
    .txt               first line the title, the rest the text
    .json              one object, or a list of objects: {title, text, url, published,
                       language} (title and text required)
    .csv               a header row with title and text, optionally url, published, language

A file is read once: the folder's ``seen`` map remembers each file by its path, modification
time and size, so an unchanged file is not read again (a changed one is, and what it holds
that was already collected is a duplicate). Files larger than the limit, of another suffix,
or that cannot be read are skipped with the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .feeds import read_feed
from .model import Entry
from .pages import article_of
from .web import Refused

__all__ = ["SUFFIXES", "FileEntries", "read_folder", "stamp"]

SUFFIXES = frozenset({".xml", ".rss", ".atom", ".html", ".htm", ".txt", ".json", ".csv"})
_FIELDS = ("title", "text", "url", "published", "language")


def stamp(path: Path) -> str:
    """What says a file changed: its modification time (ns) and size."""
    info = path.stat()
    return f"{info.st_mtime_ns}:{info.st_size}"


@dataclass(frozen=True, slots=True)
class FileEntries:
    """What one file held: its entries, or why it was skipped (``problem``)."""

    name: str  # relative to the folder
    stamp: str
    entries: list[Entry]
    problem: str | None = None


def read_folder(folder: Path, seen: dict[str, str], max_bytes: int) -> Iterator[FileEntries]:
    """The files of ``folder`` not in ``seen`` with the same stamp, in name order."""
    if not folder.is_dir():
        raise Refused(f"the folder {folder} does not exist (or is not a folder)")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise Refused(f"the hub cannot read the folder {folder}")
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        name = rel.as_posix()
        try:
            mark = stamp(path)
        except OSError:
            continue  # gone since the listing
        if seen.get(name) == mark:
            continue
        yield _read_file(path, name, mark, max_bytes)


def _read_file(path: Path, name: str, mark: str, max_bytes: int) -> FileEntries:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        kinds = ", ".join(sorted(SUFFIXES))
        return FileEntries(name, mark, [], f"not a kind of file a folder source reads "
                           f"({suffix or 'no suffix'}; it reads {kinds})")
    if path.stat().st_size > max_bytes:
        return FileEntries(name, mark, [], f"larger than {max_bytes:,} bytes "
                           "(TAHUB_FETCH_MAX_DECODED_BYTES)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileEntries(name, mark, [], f"cannot be read ({exc.strerror or exc})")
    uri = path.as_uri()
    try:
        if suffix in (".xml", ".rss", ".atom"):
            entries = read_feed(data, url=uri).entries
            entries = [Entry(ref=f"{name}: {e.url}" if e.url else f"{name} entry {n}",
                             title=e.title, text=e.text, url=e.url, published=e.published,
                             language=e.language, complete=True)
                       for n, e in enumerate(entries, 1)]
        elif suffix in (".html", ".htm"):
            article = article_of(data, uri)
            if article is None:
                return FileEntries(name, mark, [], "no article text found in the page")
            entries = [Entry(ref=name, title=article.title, text=article.text,
                             url=article.url if article.url and article.url != uri else uri,
                             published=article.published or _mtime(path))]
        else:
            text = _text(data)
            if suffix == ".txt":
                title, _, body = text.strip().partition("\n")
                entries = [Entry(ref=name, title=title.strip(), text=body.strip(), url=uri,
                                 published=_mtime(path))]
            elif suffix == ".json":
                entries = _records(_json(text), name, uri)
            else:
                entries = _records(_csv(text), name, uri)
    except Refused as refused:
        return FileEntries(name, mark, [], refused.reason)
    return FileEntries(name, mark, entries)


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused("not UTF-8 text") from None


def _json(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"not JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise Refused("JSON of an article is an object, or a list of objects")


def _csv(text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [f for f in ("title", "text") if f not in header]
    if missing:
        raise Refused(f"the CSV header lacks {', '.join(missing)} (columns: title, text, "
                      "and optionally url, published, language)")
    reader.fieldnames = header
    try:
        return list(reader)
    except csv.Error as exc:
        raise Refused(f"not readable as CSV ({exc})") from None


def _published(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("published is not an ISO 8601 date or time") from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _records(rows: list[Any], name: str, uri: str) -> list[Entry]:
    """Entries from JSON objects or CSV rows; a bad record is an entry with its
    ``problem``, which the fetcher records as skipped."""
    out = []
    for n, row in enumerate(rows, 1):
        ref = f"{name} record {n}"
        if not isinstance(row, dict):
            out.append(Entry(ref=ref, title="", text="",
                             problem="a record is an object with title and text"))
            continue
        values = {k: row.get(k) for k in _FIELDS}
        bad = [k for k in _FIELDS if values[k] is not None and not isinstance(values[k], str)]
        if bad:
            out.append(Entry(ref=ref, title="", text="",
                             problem=f"{', '.join(bad)}: not text"))
            continue
        try:
            published = _published(values["published"])
        except ValueError as exc:
            out.append(Entry(ref=ref, title="", text="", problem=str(exc)))
            continue
        url = (values["url"] or "").strip() or f"{uri}#{n}"
        out.append(Entry(ref=ref, title=(values["title"] or "").strip(),
                         text=(values["text"] or "").strip(), url=url, published=published,
                         language=(values["language"] or "").strip().lower() or None))
    return out
