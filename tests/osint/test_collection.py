"""Collection (hub.osint.collection) on a real migrated store: items, incidents, exact and
near duplicates, sealed reports."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import InvalidInput, Unavailable
from hub.osint.collection import Collection, NewItem, with_evidence
from hub.osint.dedup import fingerprint
from hub.osint.sealing import Sealer, new_key
from hub.osint.tagging import Tagger
from hub.storage.db import osint_incidents, osint_items, osint_sources, utcnow

WIRE = ("Police in Milan freed eleven Nigerian women who had been forced into prostitution "
        "after being recruited in Benin City with promises of jobs as hairdressers. The women "
        "travelled through Niger and Libya before crossing the sea to Sicily, the police said. "
        "Three suspects were arrested on Tuesday and charged with human trafficking.")
OTHER = ("Labour inspectors found 40 workers from Nepal living in containers on a building "
         "site in Doha. Their passports had been taken by the recruitment agency and they "
         "owed fees of up to 1,500 dollars each, the inspectors reported.")
PUBLISHED = dt.datetime(2026, 3, 12, tzinfo=dt.UTC)


def article(text: str, *, title: str = "", url: str | None = None,
            source: str | None = None) -> NewItem:
    return NewItem("article", title, text, language="en", published=PUBLISHED, url=url,
                   source_id=source)


def source(store: Engine, name: str) -> str:
    """A configured feed (its id)."""
    with store.begin() as conn:
        conn.execute(sa.insert(osint_sources).values(
            id=f"src_{name}", name=name, kind="feed", location=f"https://{name}.example/feed",
            language="en", every_minutes=60, trust="high", enabled=True, created_at=utcnow()))
    return f"src_{name}"


def rows(store: Engine) -> list[sa.Row[tuple[str, str, str | None, bytes | None]]]:
    with store.connect() as conn:
        return list(conn.execute(sa.select(osint_items.c.id, osint_items.c.incident_id,
                                           osint_items.c.text, osint_items.c.sealed)
                                 .order_by(osint_items.c.collected_at)))


def test_a_new_article_is_a_queued_incident_with_its_suggested_tags(
    store: Engine, tagger: Tagger
) -> None:
    added = Collection(store, tagger=tagger).add(article(WIRE, url="https://a.example/1"))
    assert added.outcome == "added" and added.tagging is not None
    assert "SexualExploitation" in added.tagging.codes("exploitation_type")
    with store.connect() as conn:
        incident = conn.execute(sa.select(osint_incidents)).one()
        item = conn.execute(sa.select(osint_items)).one()
    assert incident.id == added.incident and incident.state == "queued"
    assert item.text == WIRE and item.sealed is None
    assert item.fingerprint == fingerprint("", WIRE)
    assert {t["field"] for t in item.tagging["tags"]} >= {"exploitation_type", "location"}


def test_the_same_story_is_stored_once_per_source_and_joins_the_incident_from_another(
    store: Engine, tagger: Tagger
) -> None:
    collection = Collection(store, tagger=tagger)
    feed = source(store, "a")
    first = collection.add(article(WIRE, url="https://a.example/1", source=feed))
    again = collection.add(article(WIRE.upper() + "  ", url="https://a.example/1",
                                   source=feed))
    assert again.outcome == "duplicate" and again.item == first.item
    # the wire story as another outlet ran it: one more source of the same incident
    syndicated = collection.add(article(WIRE + " The investigation continues.",
                                        url="https://b.example/9", source=None))
    assert syndicated.outcome == "joined" and syndicated.incident == first.incident
    assert syndicated.like == first.item and syndicated.similarity is not None
    assert syndicated.similarity >= 0.5
    unrelated = collection.add(article(OTHER, url="https://a.example/2"))
    assert unrelated.outcome == "added" and unrelated.incident != first.incident
    assert [r.incident_id for r in rows(store)] == [first.incident] * 2 + [unrelated.incident]


def test_the_index_is_rebuilt_from_the_store_and_follows_merges(
    store: Engine, tagger: Tagger
) -> None:
    first = Collection(store, tagger=tagger).add(article(WIRE, url="https://a.example/1"))
    other = Collection(store, tagger=tagger).add(article(OTHER, url="https://a.example/2"))
    with store.begin() as conn:  # a reviewer merged the first incident into the other
        conn.execute(sa.update(osint_incidents).where(osint_incidents.c.id == first.incident)
                     .values(state="merged", merged_into=other.incident))
    fresh = Collection(store, tagger=tagger)  # another process: its index from the store
    joined = fresh.add(article(WIRE + " More to follow.", url="https://c.example/3"))
    assert joined.outcome == "joined" and joined.incident == other.incident


def test_a_report_is_stored_sealed_and_refused_without_a_seal(
    store: Engine, tagger: Tagger
) -> None:
    report = NewItem("report", "", "the girls at the nail bar never leave, a man drives "
                     "them every night and keeps their passports", language="en")
    with pytest.raises(InvalidInput) as refused:
        Collection(store, tagger=tagger).add(report)
    assert refused.value.field == "kind"
    assert rows(store) == []
    sealed = Collection(store, tagger=tagger, seal=lambda t: t[::-1].encode())
    added = sealed.add(report)
    ((_, _, text, box),) = rows(store)
    assert text is None and box == report.text[::-1].encode()
    assert added.tagging is not None and "WithholdsDocuments" in added.tagging.codes("control")
    with store.connect() as conn:  # its suggestions are stored without the evidence's words
        (stored,) = conn.execute(sa.select(osint_items.c.tagging)).scalars()
    assert "passports" not in str(stored) and "nail bar" not in str(stored)
    assert with_evidence(stored, report.text) == added.tagging.model_dump(mode="json")
    assert sealed.add(report).outcome == "duplicate"  # the same report twice


@pytest.mark.parametrize("text", ["", "   ", "x" * 100_001])
def test_empty_or_oversized_items_are_refused_and_store_nothing(
    store: Engine, tagger: Tagger, text: str
) -> None:
    with pytest.raises(InvalidInput):
        Collection(store, tagger=tagger).add(article(text))
    assert rows(store) == []


def test_a_sealer_opens_what_it_sealed_with_any_of_its_keys_and_refuses_the_rest() -> None:
    old, new = new_key(), new_key()
    box = Sealer([old]).seal("a man keeps their passports")
    assert b"passports" not in box
    rotated = Sealer([new, old])  # the new key first: it seals, the old one still opens
    assert rotated.open(box) == "a man keeps their passports"
    assert Sealer([new]).open(rotated.seal("x")) == "x"
    with pytest.raises(Unavailable):
        Sealer([new]).open(box)
    with pytest.raises(Unavailable):
        rotated.open(box[:-1] + bytes([box[-1] ^ 1]))  # tampered with
    for keys in ([], ["not a key"]):
        with pytest.raises(InvalidInput):
            Sealer(keys)
