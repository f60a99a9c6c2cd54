"""Sources (hub.osint.sources): configuration checked whole, folder sources read from files,
and the schedule shared by several pollers."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import Conflict, InvalidInput, NotFound
from hub.osint.collection import Collection
from hub.osint.sources import LANGUAGES, Fetcher, Limits, Pacer, Poller, Sources, Web
from hub.osint.tagging import Tagger
from hub.osint.tagging.lexicon import SUPPORTED_LANGUAGES
from hub.storage.db import (
    audit_entries,
    make_engine,
    osint_items,
    osint_sources,
    upgrade,
    utcnow,
)
from tests.osint.feedserver import articles, atom, page, rss

EN, FR, ES = articles("en"), articles("fr"), articles("es")


def web() -> Web:
    return Web(user_agent="tahub-test", timeout=2, max_bytes=1 << 20, max_decoded=1 << 20,
               pacer=Pacer(0))


@pytest.fixture
def fetcher(store: Engine, tagger: Tagger) -> Iterator[Fetcher]:
    made = Fetcher(store, Collection(store, tagger=tagger), web(),
                   limits=Limits(max_entries=50, short_text=200, max_file_bytes=1 << 20))
    yield made
    made.close()


def items(store: Engine) -> list[Any]:
    with store.connect() as conn:
        return list(conn.execute(sa.select(osint_items).order_by(osint_items.c.url)))


# -- configuration -------------------------------------------------------------------------
def test_the_languages_are_the_taggers() -> None:
    assert LANGUAGES == SUPPORTED_LANGUAGES


def test_a_source_is_added_listed_changed_disabled_and_removed(
        store: Engine, tmp_path: Path) -> None:
    sources = Sources(store)
    feed = sources.add({"name": "Coastal Herald", "kind": "feed",
                        "location": "https://news.example/rss.xml", "language": "EN",
                        "every_minutes": 30, "trust": "high",
                        "hosts": ["CDN.news.example", "static.example:8443"]})
    assert feed.id.startswith("src_") and feed.language == "en" and feed.enabled
    assert feed.hosts == ["cdn.news.example", "static.example:8443"]
    assert feed.next_fetch_at is not None and feed.last_fetch is None
    folder = sources.add({"name": "Closed network", "kind": "folder",
                          "location": str(tmp_path)})
    assert (folder.trust, folder.every_minutes, folder.language) == ("medium", 60, None)
    assert [s.name for s in sources.all()] == ["Closed network", "Coastal Herald"]

    changed = sources.change("Coastal Herald", {"every_minutes": 120, "trust": "low"})
    assert (changed.every_minutes, changed.trust, changed.location) == \
        (120, "low", "https://news.example/rss.xml")
    assert not sources.enable(feed.id, False).enabled
    assert sources.get("Coastal Herald").enabled is False
    assert sources.enable("Coastal Herald").enabled

    assert sources.remove("Closed network").id == folder.id
    with pytest.raises(NotFound):
        sources.get(folder.id)


def test_each_change_of_a_source_is_audited_without_a_feeds_secrets(store: Engine) -> None:
    """Who added, changed, disabled and removed which source, in the audit log; a feed URL's
    user, password and query (an access token) are never written there; a refused change
    writes nothing."""
    sources = Sources(store)
    url = "https://reader:hunter2@news.example:8443/rss.xml?token=s3cr3t"
    feed = sources.add({"name": "Wire", "kind": "feed", "location": url}, actor="cli:ops")
    sources.change("Wire", {"every_minutes": 120}, actor="tahub_admin", org="org_hub")
    sources.change("Wire", {"every_minutes": 120}, actor="tahub_admin")  # nothing changed
    sources.enable("Wire", False, actor="tahub_admin")
    with pytest.raises(InvalidInput):
        sources.change("Wire", {"every_minutes": 1}, actor="tahub_admin")
    sources.remove("Wire", actor="cli:ops")
    with store.connect() as conn:
        entries = conn.execute(sa.select(audit_entries).where(
            audit_entries.c.object_type == "source").order_by(audit_entries.c.seq)).all()
    assert [(e.action, e.actor, e.object_id) for e in entries] == [
        ("source.added", "cli:ops", feed.id), ("source.changed", "tahub_admin", feed.id),
        ("source.changed", "tahub_admin", feed.id), ("source.removed", "cli:ops", feed.id)]
    added, every, disabled, removed = (e.details for e in entries)
    assert added["location"] == removed["location"] == "https://news.example:8443/rss.xml?..."
    assert added["name"] == "Wire" and added["kind"] == "feed" and added["enabled"] is True
    assert every == {"name": "Wire", "changed": {"every_minutes": [60, 120]}}
    assert entries[1].org_id == "org_hub"
    assert disabled["changed"] == {"enabled": [True, False]}
    written = json.dumps([e.details for e in entries])
    assert "hunter2" not in written and "s3cr3t" not in written and "reader" not in written


@pytest.mark.parametrize(("spec", "field", "reason"), [
    ({"kind": "feed", "location": "ftp://news.example/feed"}, "location", "http or https"),
    ({"kind": "feed", "location": "file:///etc/passwd"}, "location", "http or https"),
    ({"kind": "feed", "location": "https:///no-host"}, "location", "no valid host"),
    ({"kind": "folder", "location": "/no/such/folder"}, "location", "no such folder"),
    ({"kind": "folder", "location": "relative/path"}, "location", "absolute path"),
    ({"kind": "feed", "location": "https://a.example/", "language": "de"}, "language",
     "en, fr, es"),
    ({"kind": "feed", "location": "https://a.example/", "every_minutes": 1},
     "every_minutes", "greater than or equal to 5"),
    ({"kind": "feed", "location": "https://a.example/", "trust": "total"}, "trust",
     "'high', 'medium' or 'low'"),
    ({"kind": "stream", "location": "https://a.example/"}, "kind", "'feed' or 'folder'"),
    ({"kind": "feed", "location": "https://a.example/", "hosts": ["not a host!"]},
     "hosts", "not a host name"),
    ({"kind": "feed", "location": "https://a.example/", "colour": "red"}, "colour",
     "Extra inputs"),
    ({"kind": "feed"}, "location", "Field required"),
])
def test_a_bad_source_is_refused_naming_the_field(
        store: Engine, spec: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Sources(store).add({"name": "Bad", **spec})
    assert refused.value.field == field, refused.value.problem()
    assert reason in str(refused.value)
    with store.connect() as conn:  # nothing left behind
        assert conn.execute(sa.select(osint_sources)).first() is None


def test_names_are_unique_and_kinds_do_not_change(store: Engine) -> None:
    sources = Sources(store)
    sources.add({"name": "A", "kind": "feed", "location": "https://a.example/"})
    sources.add({"name": "B", "kind": "feed", "location": "https://b.example/"})
    with pytest.raises(Conflict) as taken:
        sources.add({"name": "A", "kind": "feed", "location": "https://c.example/"})
    assert taken.value.field == "name"
    with pytest.raises(Conflict):
        sources.change("B", {"name": "A"})
    with pytest.raises(InvalidInput) as kind:
        sources.change("B", {"kind": "folder"})
    assert kind.value.field == "kind"
    with pytest.raises(InvalidInput) as bad:
        sources.change("B", {"every_minutes": 0})
    assert bad.value.field == "every_minutes"
    assert sources.get("B").every_minutes == 60


# -- folder sources ------------------------------------------------------------------------
def fill(folder: Path) -> None:
    """A closed network's drop folder: one file of each kind, and a few bad ones."""
    a, b, c, d, e, f = EN[20:26]
    (folder / "feeds").mkdir()
    (folder / "feeds" / "herald.rss").write_bytes(
        rss([(a, "https://herald.example/a", a.text)]))
    (folder / "feeds" / "courrier.atom").write_bytes(
        atom([(FR[2], "https://courrier.example/1", FR[2].text)]))
    (folder / "saved.html").write_bytes(page(b))
    (folder / "note.txt").write_text(f"{c.title}\n{c.text}\n", encoding="utf-8")
    (folder / "batch.json").write_text(json.dumps([
        {"title": d.title, "text": d.text, "url": "https://wire.example/d",
         "published": d.published, "language": "en"},
        {"title": "no text"},
        {"title": ES[0].title, "text": ES[0].text, "published": "last Tuesday"},
    ]), encoding="utf-8")
    (folder / "one.json").write_text(json.dumps({"title": e.title, "text": e.text}),
                                     encoding="utf-8")
    (folder / "table.csv").write_text(
        "title,text,url,published,language\n"
        f'"{f.title}","{f.text}",https://wire.example/f,{f.published},en\n'
        f'"{ES[1].title}","{ES[1].text}",,,es\n', encoding="utf-8")
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4")
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / ".hidden.txt").write_text("ignored\nignored", encoding="utf-8")


def test_a_folder_source_reads_every_kind_of_file_once(
        store: Engine, fetcher: Fetcher, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    fill(folder)
    sources = Sources(store)
    sources.add({"name": "Drop", "kind": "folder", "location": str(folder)})
    record = fetcher.fetch("Drop")
    assert record.outcome == "ok" and record.http_status is None, record
    why = {s.ref: s.reason for s in record.skipped}
    assert set(why) == {"batch.json record 2", "batch.json record 3", "scan.pdf",
                        "broken.json"}, why
    assert why["batch.json record 2"] == "no text"
    assert "ISO 8601" in why["batch.json record 3"]
    assert "not a kind of file" in why["scan.pdf"] and "not JSON" in why["broken.json"]
    assert (record.found, record.added, record.duplicates) == (10, 8, 0)
    stored = {i.title: i for i in items(store)}
    assert len(stored) == 8
    assert stored[EN[20].title].url == "https://herald.example/a"
    assert stored[FR[2].title].language == "fr"
    assert EN[21].text.split(". ")[0] in stored[EN[21].title].text  # trafilatura
    assert stored[EN[22].title].text == EN[22].text  # .txt: first line the title
    assert stored[EN[22].title].url == (folder / "note.txt").as_uri()
    assert stored[EN[23].title].published_at.date().isoformat() == EN[23].published
    assert stored[ES[1].title].language == "es"

    again = fetcher.fetch("Drop")  # nothing new: no file is read again
    assert (again.outcome, again.found, again.added, again.skipped) == ("ok", 0, 0, [])

    # a changed file is read again: what it held already is a duplicate
    a = EN[26]
    with (folder / "note.txt").open("a", encoding="utf-8") as note:
        note.write("The investigation continues.\n")
    (folder / "new.txt").write_text(f"{a.title}\n{a.text}", encoding="utf-8")
    third = fetcher.fetch("Drop")
    assert (third.found, third.added) == (2, 2), third  # the note changed: a new text
    csv_path = folder / "table.csv"
    os.utime(csv_path, ns=(csv_path.stat().st_atime_ns, csv_path.stat().st_mtime_ns + 10**9))
    fourth = fetcher.fetch("Drop")
    assert (fourth.found, fourth.added, fourth.duplicates) == (2, 0, 2), fourth


def test_a_folder_that_went_away_is_a_failed_fetch(
        store: Engine, fetcher: Fetcher, tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    Sources(store).add({"name": "Gone", "kind": "folder", "location": str(folder)})
    folder.rmdir()
    record = fetcher.fetch("Gone")
    assert record.outcome == "failed" and "does not exist" in (record.error or "")


def test_a_source_with_collected_articles_is_disabled_not_removed(
        store: Engine, fetcher: Fetcher, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{EN[27].title}\n{EN[27].text}", encoding="utf-8")
    sources = Sources(store)
    sources.add({"name": "Used", "kind": "folder", "location": str(tmp_path)})
    assert fetcher.fetch("Used").added == 1
    with pytest.raises(Conflict, match="disable it instead"):
        sources.remove("Used")
    assert sources.get("Used").last_fetch is not None


# -- the schedule --------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, store: Engine) -> Iterator[Engine]:
    """The test's SQLite store, or a fresh migrated PostgreSQL database."""
    if request.param == "sqlite":
        yield store
        return
    from tests.hub.postgres import postgres_database

    with postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def test_two_pollers_claim_a_due_source_once(any_store: Engine) -> None:
    store = any_store
    sources = Sources(store)
    for n in range(6):
        sources.add({"name": f"S{n}", "kind": "feed", "location": f"https://{n}.example/",
                     "every_minutes": 10})
    sources.add({"name": "Off", "kind": "feed", "location": "https://off.example/",
                 "enabled": False})
    claimed: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def poll(n: int) -> None:
        start.wait()
        while (source := Sources(store).claim_due()) is not None:
            claimed[n].append(source.name)

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = claimed[0] + claimed[1]
    assert sorted(together) == [f"S{n}" for n in range(6)], claimed  # each once, not "Off"
    now = utcnow()
    for source in sources.all():
        if source.enabled:
            assert source.next_fetch_at is not None and source.next_fetch_at > now
    assert sources.claim_due() is None


def test_the_poller_fetches_what_is_due(store: Engine, fetcher: Fetcher,
                                        tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{EN[28].title}\n{EN[28].text}", encoding="utf-8")
    sources = Sources(store)
    sources.add({"name": "Due", "kind": "folder", "location": str(tmp_path)})
    sources.add({"name": "Disabled", "kind": "folder", "location": str(tmp_path),
                 "enabled": False})
    poller = Poller(sources, fetcher, interval=0.05)
    seen: list[str] = []
    done = poller.run_due(lambda source: seen.append(source.name) or None)
    assert seen == ["Due"] and [r.added for r in done] == [1]
    assert poller.run_due() == []  # not due again before every_minutes

    with store.begin() as conn:  # due again
        conn.execute(sa.update(osint_sources).values(next_fetch_at=utcnow()))
    poller.start()
    deadline = utcnow().timestamp() + 10
    while len(sources.fetches("Due")) < 2:
        assert utcnow().timestamp() < deadline
        threading.Event().wait(0.05)
    poller.stop()
    assert sources.fetches("Due")[0].outcome == "ok"
    assert sources.fetches("Disabled") == []
