"""Fetching feeds (hub.osint.sources) from a real HTTP server on loopback: articles in the
feed and on their pages, conditional requests, duplicates across fetches, and every bad
answer a site can give recorded as a failed fetch or a skipped entry with its reason."""

from __future__ import annotations

import gzip
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hub.osint.collection import Collection
from hub.osint.sources import Fetcher, Limits, Pacer, Sources, Web
from hub.osint.tagging import Tagger
from hub.storage.db import osint_fetches, osint_items, osint_sources
from tests.osint.feedserver import FeedServer, Route, articles, atom, gzip_bomb, page, rss, serving

EN = articles("en")
FR = articles("fr")
GERMAN = ("Die Polizei in Hamburg hat am Dienstag zwölf Frauen aus einem Bordell befreit, "
          "die dort zur Prostitution gezwungen wurden. Die Frauen stammen aus Rumänien und "
          "Bulgarien und waren mit falschen Versprechungen angeworben worden, sagte ein "
          "Sprecher der Staatsanwaltschaft. Drei Verdächtige wurden festgenommen.")


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serving() as started:
        yield started


@pytest.fixture
def other() -> Iterator[FeedServer]:
    """Another host (another port on loopback)."""
    with serving() as started:
        yield started


def make_web(**overrides: Any) -> Web:
    options: dict[str, Any] = {"user_agent": "tahub-test/1 (+https://hub.example)",
                               "timeout": 5.0, "max_bytes": 256 * 1024,
                               "max_decoded": 1024 * 1024, "pacer": Pacer(0)}
    options.update(overrides)
    return Web(**options)


@pytest.fixture
def kit(store: Engine, tagger: Tagger) -> Iterator[tuple[Sources, Fetcher]]:
    fetcher = Fetcher(store, Collection(store, tagger=tagger), make_web(),
                      limits=Limits(max_entries=50, short_text=200))
    yield Sources(store), fetcher
    fetcher.close()


def items(store: Engine) -> list[Any]:
    with store.connect() as conn:
        return list(conn.execute(sa.select(osint_items).order_by(osint_items.c.collected_at)))


def reasons(record: Any) -> dict[str, str]:
    return {s.ref: s.reason for s in record.skipped}


def test_a_feed_is_collected_and_its_fetch_recorded(
        server: FeedServer, kit: tuple[Sources, Fetcher], store: Engine) -> None:
    sources, fetcher = kit
    entries = [(a, server.url(f"/news/{a.id}"), a.text) for a in EN[:3]]
    url = server.feed("/rss.xml", rss(entries))
    source = sources.add({"name": "Coastal Herald", "kind": "feed", "location": url,
                          "language": "en", "trust": "high"})
    record = fetcher.fetch("Coastal Herald")
    assert record.outcome == "ok", record
    assert (record.http_status, record.found, record.added, record.duplicates) == \
        (200, 3, 3, 0)
    assert record.skipped == [] and record.error is None and record.finished_at
    stored = items(store)
    assert {i.url for i in stored} == {link for _, link, _ in entries}
    assert {i.source_id for i in stored} == {source.id}
    assert {i.fetch_id for i in stored} == {record.id}
    first = next(i for i in stored if i.url.endswith(EN[0].id))
    assert first.title == EN[0].title and first.text == EN[0].text
    assert first.published_at.date().isoformat() == EN[0].published
    assert first.language == "en" and first.tagging["relevance"]["relevant"]
    # the request said who is asking
    assert server.hits("/rss.xml")[0]["user-agent"] == "tahub-test/1 (+https://hub.example)"
    assert sources.get(source.id).last_fetch == record
    assert sources.fetches(source.id) == [record]


def test_conditional_requests_and_duplicates_across_fetches(
        server: FeedServer, kit: tuple[Sources, Fetcher], store: Engine) -> None:
    sources, fetcher = kit
    entries = [(a, server.url(f"/news/{a.id}"), a.text) for a in EN[:2]]
    url = server.feed("/rss.xml", rss(entries), etag='"v1"',
                      last_modified="Tue, 10 Mar 2026 08:00:00 GMT")
    sources.add({"name": "Herald", "kind": "feed", "location": url})
    assert fetcher.fetch("Herald").added == 2
    with store.connect() as conn:
        row = conn.execute(sa.select(osint_sources)).one()
    assert (row.etag, row.last_modified) == ('"v1"', "Tue, 10 Mar 2026 08:00:00 GMT")

    again = fetcher.fetch("Herald")  # the server answers 304 to the validators
    assert (again.outcome, again.http_status, again.found, again.added) == \
        ("not_modified", 304, 0, 0)
    sent = server.hits("/rss.xml")[-1]
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Tue, 10 Mar 2026 08:00:00 GMT"

    # a new version of the feed: one new entry, two old ones (duplicates, not refetched)
    entries.append((EN[2], server.url(f"/news/{EN[2].id}"), EN[2].text))
    server.routes["/rss.xml"] = Route(body=rss(entries), etag='"v2"')
    third = fetcher.fetch("Herald")
    assert (third.outcome, third.found, third.added, third.duplicates) == ("ok", 3, 1, 2)
    assert len(items(store)) == 3


def test_short_summaries_fetch_the_article_page(
        server: FeedServer, kit: tuple[Sources, Fetcher], store: Engine) -> None:
    sources, fetcher = kit
    teaser = [(a, server.url(f"/news/{a.id}.html"), a.text.split(". ")[0] + ".")
              for a in EN[3:5]]
    for a, _, _ in teaser:
        server.html(f"/news/{a.id}.html", page(a))
    url = server.feed("/teasers.xml", rss(teaser))
    sources.add({"name": "Teasers", "kind": "feed", "location": url, "language": "en"})
    record = fetcher.fetch("Teasers")
    assert (record.outcome, record.found, record.added) == ("ok", 2, 2), record
    stored = {i.url: i for i in items(store)}
    for a, link, _ in teaser:
        text = stored[link].text
        assert a.text.split(". ")[1] in text  # the page's whole story, not the teaser
        assert "Subscribe" not in text and "Sport" not in text  # no footer, no menu
        assert server.hits(f"/news/{a.id}.html")[0]["user-agent"].startswith("tahub-test")


def test_bad_entries_are_skipped_each_with_its_reason(
        server: FeedServer, other: FeedServer, kit: tuple[Sources, Fetcher],
        store: Engine) -> None:
    sources, fetcher = kit
    pdf = server.url("/files/report.pdf")
    server.routes["/files/report.pdf"] = Route(body=b"%PDF-1.4 ...",
                                                content_type="application/pdf")
    elsewhere = other.url("/story.html")
    other.html("/story.html", page(EN[6]))
    missing = server.url("/news/gone.html")
    entries = [
        (EN[5], server.url("/news/ok"), EN[5].text),
        (EN[6], elsewhere, "A teaser."),  # a link to another host
        (EN[7], pdf, "A teaser."),  # not HTML
        (EN[8], missing, "A teaser."),  # 404
    ]
    german = type(EN[0])("de-1", "de", "Zwölf Frauen in Hamburg befreit", GERMAN,
                         "2026-03-10")
    entries.append((german, server.url("/news/de-1"), GERMAN))
    url = server.feed("/mixed.xml", rss(entries))
    sources.add({"name": "Mixed", "kind": "feed", "location": url})
    record = fetcher.fetch("Mixed")
    assert (record.outcome, record.found, record.added) == ("ok", 5, 1), record
    why = reasons(record)
    assert set(why) == {elsewhere, pdf, missing, server.url("/news/de-1")}
    assert "not allowed" in why[elsewhere] and f"127.0.0.1:{other.port}" in why[elsewhere]
    assert "application/pdf is not HTML" in why[pdf]
    assert "HTTP 404" in why[missing]
    assert "'de'" in why[server.url("/news/de-1")] and "en, fr, es" in \
        why[server.url("/news/de-1")]
    assert other.requests == []  # never asked
    assert [i.url for i in items(store)] == [server.url("/news/ok")]


def test_a_host_listed_for_the_source_may_be_reached(
        server: FeedServer, other: FeedServer, kit: tuple[Sources, Fetcher]) -> None:
    sources, fetcher = kit
    other.html("/story.html", page(EN[9]))
    url = server.feed("/rss.xml", rss([(EN[9], other.url("/story.html"), "Teaser.")]))
    sources.add({"name": "Syndicated", "kind": "feed", "location": url,
                 "hosts": [f"127.0.0.1:{other.port}"]})
    record = fetcher.fetch("Syndicated")
    assert (record.outcome, record.added) == ("ok", 1), record


def test_redirects_are_followed_only_to_the_allowed_hosts(
        server: FeedServer, other: FeedServer, kit: tuple[Sources, Fetcher]) -> None:
    sources, fetcher = kit
    server.feed("/new.xml", rss([(EN[10], server.url("/a"), EN[10].text)]))
    server.routes["/old.xml"] = Route(status=301, headers={"Location": "/new.xml"})
    sources.add({"name": "Moved", "kind": "feed", "location": server.url("/old.xml")})
    assert fetcher.fetch("Moved").added == 1

    other.feed("/feed.xml", rss([(EN[11], other.url("/b"), EN[11].text)]))
    server.routes["/away.xml"] = Route(status=302,
                                       headers={"Location": other.url("/feed.xml")})
    sources.add({"name": "Away", "kind": "feed", "location": server.url("/away.xml")})
    record = fetcher.fetch("Away")
    assert record.outcome == "failed" and record.added == 0
    assert record.error is not None and "a redirect to 127.0.0.1:" in record.error
    assert "not allowed" in record.error and other.requests == []

    server.routes["/loop.xml"] = Route(status=302, headers={"Location": "/loop.xml"})
    sources.add({"name": "Loop", "kind": "feed", "location": server.url("/loop.xml")})
    assert "more than 5 redirects" in (fetcher.fetch("Loop").error or "")


@pytest.mark.parametrize(("route", "expected"), [
    (Route(size=1024 * 1024), "longer than 262,144 bytes"),  # streamed, no length
    (Route(body=b"a" * (300 * 1024)), "more than 262,144"),  # announced
    (Route(body=gzip_bomb(50 * 1024 * 1024), headers={"Content-Encoding": "gzip"}),
     "decompression bomb"),
    (Route(body=b"<html><body>Not a feed</body></html>", content_type="text/html"),
     "text/html, not a feed"),
    (Route(body=b'{"items": []}', content_type="application/json"),
     "application/json, not a feed"),
    (Route(body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
                b"<item><title>A</title><description>broken"), "malformed feed"),
    (Route(body=b"<?xml version='1.0'?><catalog><book/></catalog>",
           content_type="application/xml"), "not an RSS or Atom feed"),
    (Route(status=500, body=b"oops", content_type="text/plain"), "HTTP 500"),
    (Route(body=b"<rss/>", delay=2.0), "no answer within 1 s"),
    (Route(body=b"<rss>" + b" " * 8192 + b"</rss>", drip=0.3), "took longer than 1 s"),
    (Route(body=b"<rss/>", headers={"Content-Encoding": "br"}), "'br'"),
], ids=["huge-streamed", "huge-announced", "gzip-bomb", "html", "json", "malformed",
        "other-xml", "server-error", "slow", "drip", "unknown-encoding"])
def test_a_bad_answer_is_a_failed_fetch_with_its_reason(
        server: FeedServer, store: Engine, tagger: Tagger, route: Route,
        expected: str) -> None:
    fetcher = Fetcher(store, Collection(store, tagger=tagger), make_web(timeout=1.0))
    sources = Sources(store)
    server.routes["/feed"] = route
    source = sources.add({"name": "Bad", "kind": "feed", "location": server.url("/feed")})
    started = time.monotonic()
    record = fetcher.fetch(source.id)
    fetcher.close()
    assert time.monotonic() - started < 4
    assert record.outcome == "failed" and record.error is not None
    assert expected in record.error, record.error
    assert (record.found, record.added) == (0, 0)
    assert sources.fetches(source.id)[0].error == record.error
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(osint_items)).scalar() == 0
        assert conn.execute(sa.select(osint_fetches.c.outcome)).scalar() == "failed"


def test_a_gzip_feed_within_the_limits_is_read(
        server: FeedServer, kit: tuple[Sources, Fetcher]) -> None:
    sources, fetcher = kit
    body = gzip.compress(rss([(EN[12], server.url("/z"), EN[12].text)]))
    server.routes["/gz.xml"] = Route(body=body, headers={"Content-Encoding": "gzip"})
    sources.add({"name": "Zipped", "kind": "feed", "location": server.url("/gz.xml")})
    record = fetcher.fetch("Zipped")
    assert (record.outcome, record.added) == ("ok", 1), record
    assert server.hits("/gz.xml")[0]["accept-encoding"] == "gzip, deflate"


def test_an_atom_feed_in_french(server: FeedServer, kit: tuple[Sources, Fetcher],
                                store: Engine) -> None:
    sources, fetcher = kit
    entries = [(a, server.url(f"/fr/{a.id}"), a.text) for a in FR[:2]]
    sources.add({"name": "Courrier", "kind": "feed",
                 "location": server.feed("/atom.xml", atom(entries),
                                         content_type="application/atom+xml")})
    record = fetcher.fetch("Courrier")
    assert (record.outcome, record.added) == ("ok", 2), record
    assert {i.language for i in items(store)} == {"fr"}


def test_the_feed_entries_over_the_limit_are_recorded(
        server: FeedServer, store: Engine, tagger: Tagger) -> None:
    fetcher = Fetcher(store, Collection(store, tagger=tagger), make_web(),
                      limits=Limits(max_entries=2, short_text=0))
    entries = [(a, server.url(f"/n/{a.id}"), a.text) for a in EN[13:17]]
    Sources(store).add({"name": "Busy", "kind": "feed",
                        "location": server.feed("/busy.xml", rss(entries))})
    record = fetcher.fetch("Busy")
    fetcher.close()
    assert (record.found, record.added) == (4, 2)
    assert [s.reason for s in record.skipped] == [
        "2 more entries not read (TAHUB_FETCH_MAX_ENTRIES: 2 a fetch)"]


def test_requests_to_one_host_are_paced(server: FeedServer, store: Engine,
                                        tagger: Tagger) -> None:
    fetcher = Fetcher(store, Collection(store, tagger=tagger), make_web(pacer=Pacer(0.4)),
                      limits=Limits(short_text=10_000))  # every entry's page is fetched
    teaser = [(a, server.url(f"/p/{a.id}"), "Teaser.") for a in EN[17:19]]
    for a, _, _ in teaser:
        server.html(f"/p/{a.id}", page(a))
    Sources(store).add({"name": "Paced", "kind": "feed",
                        "location": server.feed("/paced.xml", rss(teaser))})
    assert fetcher.fetch("Paced").added == 2
    fetcher.close()
    times = [t for _, _, t in server.requests]
    assert len(times) == 3
    assert all(b - a >= 0.38 for a, b in itertools.pairwise(times))


def test_a_source_being_fetched_is_not_fetched_twice_at_once(
        server: FeedServer, kit: tuple[Sources, Fetcher]) -> None:
    sources, fetcher = kit
    server.routes["/slow.xml"] = Route(body=rss([(EN[19], server.url("/s"), EN[19].text)]),
                                       delay=0.5)
    sources.add({"name": "Slow", "kind": "feed", "location": server.url("/slow.xml")})
    running = fetcher.start("Slow")
    assert running.outcome == "running" and running.finished_at is None
    from hub.errors import Conflict

    with pytest.raises(Conflict, match="is being fetched"):
        fetcher.fetch("Slow")
    deadline = time.monotonic() + 10
    while sources.fetches("Slow")[0].outcome == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sources.fetches("Slow")[0].added == 1
