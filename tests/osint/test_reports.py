"""Crowd reports (hub.osint.reports, hub.osint.challenges) on a real migrated store: the proof
of work, sealing, reviewers' access, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import Conflict, InvalidInput, Unavailable
from hub.governance.audit import Action, AuditLog
from hub.osint.challenges import Challenges, leading_zero_bits, secrets_from_keys, solve
from hub.osint.collection import Collection, with_evidence
from hub.osint.reports import PublicReport, Reports
from hub.osint.sealing import Sealer, derived_secret, new_key
from hub.osint.tagging import Tagger
from hub.storage.db import audit_entries, osint_incidents, osint_items, osint_receipts

KEY = new_key()
BITS = 8
REPORT = ("Je travaille dans un restaurant à Lyon. Le patron garde les passeports de trois "
          "cuisiniers venus du Mali et ne les paie pas depuis des mois. Ils dorment dans la "
          "cave et ne peuvent pas sortir.")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def reports(store: Engine, tagger: Tagger, clock: Clock | None = None,
            keys: list[str] | None = None, retention_days: int = 30) -> Reports:
    keys = [KEY] if keys is None else keys
    clock = clock or Clock()
    collection = Collection(store, tagger=tagger, seal=Sealer(keys).seal if keys else None,
                            clock=clock)
    return Reports(store, AuditLog(store), keys=keys, bits=BITS, max_chars=5000,
                   retention_days=retention_days, collection=collection, clock=clock)


def opened(store: Engine, item_id: str, keys: list[str] | None = None) -> str:
    """A report's sealed text, opened with ``keys`` (the review queue opens it so for the
    reviewer holding its incident: tests/osint/test_review.py)."""
    with store.connect() as conn:
        sealed = conn.execute(sa.select(osint_items.c.sealed)
                              .where(osint_items.c.id == item_id)).scalar_one()
    return Sealer(keys or [KEY]).open(sealed)


def send(service: Reports, report: PublicReport) -> str:
    challenge = service.challenge()
    return service.submit(report, challenge=challenge.text,
                          nonce=solve(challenge.text, challenge.bits)).id


# -- proof of work -------------------------------------------------------------------------
def test_a_solved_challenge_is_accepted_and_anything_else_refused_with_its_field() -> None:
    clock = Clock()
    challenges = Challenges(secrets_from_keys([KEY]), 12, clock=clock)
    issued = challenges.issue()
    nonce = solve(issued.text, 12)
    digest = hashlib.sha256(f"{issued.text}{nonce}".encode()).digest()
    assert leading_zero_bits(digest) >= 12
    assert challenges.check(issued.text, nonce) == hashlib.sha256(issued.text.encode()).hexdigest()

    def refused(challenge: str, nonce: str) -> InvalidInput:
        with pytest.raises(InvalidInput) as caught:
            challenges.check(challenge, nonce)
        return caught.value

    wrong = next(str(n) for n in range(10**6) if leading_zero_bits(hashlib.sha256(
        f"{issued.text}{n}".encode()).digest()) < 12)
    assert refused(issued.text, wrong).field == "nonce"
    assert "12 zero bits" in refused(issued.text, wrong).detail
    assert refused(issued.text, "not a nonce!").field == "nonce"
    assert refused("nonsense", nonce).field == "challenge"
    # a harder difficulty claimed by the sender breaks the signature
    body, mac = issued.text.rsplit(".", 1)
    easier = body.replace(".12.", ".1.", 1) + "." + mac
    assert "not issued by this hub" in refused(easier, "0").detail
    # another hub's (another key's) challenge
    other = Challenges(secrets_from_keys([new_key()]), 12, clock=clock).issue()
    assert refused(other.text, solve(other.text, 12)).field == "challenge"
    # expired
    clock.now += dt.timedelta(minutes=11)
    assert "expired" in refused(issued.text, nonce).detail


def test_a_challenge_signed_before_a_key_rotation_is_still_accepted() -> None:
    old, new = new_key(), new_key()
    issued = Challenges(secrets_from_keys([old]), 4).issue()
    Challenges(secrets_from_keys([new, old]), 4).check(issued.text, solve(issued.text, 4))


def test_secrets_derived_from_a_key_are_bound_to_their_purpose() -> None:
    key = new_key()
    limit = derived_secret(key, "tahub crowd reports: rate-limit keys v1")
    assert limit == derived_secret(key, "tahub crowd reports: rate-limit keys v1")  # any process
    assert len(limit) == 32 and limit not in (derived_secret(key, "another purpose"),
                                              derived_secret(new_key(), "tahub crowd reports: "
                                                             "rate-limit keys v1"))
    assert limit != secrets_from_keys([key])[0]  # not the challenges' secret


# -- submitting ----------------------------------------------------------------------------
def test_a_report_is_stored_sealed_with_no_plaintext_and_opens_with_the_key(
    store: Engine, tagger: Tagger
) -> None:
    service = reports(store, tagger)
    receipt = send(service, PublicReport(REPORT, "fr", "Lyon, rue <b>Mercière</b>",
                                         dt.date(2026, 4, 28)))
    assert receipt.startswith("rcp_")
    with store.connect() as conn:
        item = conn.execute(sa.select(osint_items)).one()
        row = conn.execute(sa.select(osint_receipts)).one()
        incident = conn.execute(sa.select(osint_incidents)).one()
    assert (row.id, row.item_id) == (receipt, item.id) and incident.state == "queued"
    assert item.kind == "report" and item.text is None and item.title is None
    assert item.language == "fr" and item.published_at == dt.datetime(2026, 4, 28, tzinfo=dt.UTC)
    # no word of the report, nor the place, anywhere in the row
    stored = json.dumps({k: (v.hex() if isinstance(v, bytes) else str(v))
                         for k, v in item._mapping.items()})
    for words in ("restaurant", "passeports", "Mali", "Mercière", "cuisiniers", "cave"):
        assert words not in stored
        assert words.encode() not in item.sealed
    # the suggestions are there (codes), their evidence without its words
    assert item.tagging["tags"], "the tagger found nothing to suggest"
    evidence = [e for tag in item.tagging["tags"] for e in tag["evidence"]]
    assert evidence and all(e["text"] == "" and e["sentence"] == "" for e in evidence)
    text = opened(store, item.id)
    assert text == f"{REPORT}\n\nWhere: Lyon, rue <b>Mercière</b>\nWhen: 2026-04-28"
    refilled = [e for tag in with_evidence(item.tagging, text)["tags"] for e in tag["evidence"]]
    assert all(e["text"] and e["text"] in e["sentence"] and e["sentence"] in text
               for e in refilled)


def test_markup_is_kept_as_text_never_stripped(store: Engine, tagger: Tagger) -> None:
    service = reports(store, tagger)
    text = 'I saw <script>alert("x")</script> & <img src=x onerror=alert(1)> at the port.'
    send(service, PublicReport(text))
    with store.connect() as conn:
        item_id = conn.execute(sa.select(osint_items.c.id)).scalar_one()
    assert opened(store, item_id) == text


def test_refused_reports_store_nothing_and_spend_nothing(store: Engine, tagger: Tagger) -> None:
    service = reports(store, tagger)
    challenge = service.challenge()
    nonce = solve(challenge.text, challenge.bits)
    cases = [(PublicReport("  "), "text"), (PublicReport("x" * 5001), "text"),
             (PublicReport(REPORT, where="y" * 201), "where"),
             (PublicReport(REPORT, when=dt.date(2027, 1, 1)), "when"),
             (PublicReport(REPORT, website="http://spam.example"), "website")]
    for report, field in cases:
        with pytest.raises(InvalidInput) as caught:
            service.submit(report, challenge=challenge.text, nonce=nonce)
        assert caught.value.field == field
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(osint_items)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(osint_receipts)).scalar() == 0
    # the challenge is still good, once
    service.submit(PublicReport(REPORT), challenge=challenge.text, nonce=nonce)
    with pytest.raises(Conflict) as reused:
        service.submit(PublicReport(REPORT + " Again."), challenge=challenge.text, nonce=nonce)
    assert reused.value.field == "challenge"


def test_without_a_key_reports_are_refused_naming_the_setting(
    store: Engine, tagger: Tagger
) -> None:
    service = reports(store, tagger, keys=[])
    for attempt in (service.challenge,
                    lambda: service.submit(PublicReport(REPORT), challenge="x", nonce="1")):
        with pytest.raises(Unavailable) as caught:
            attempt()
        assert "TAHUB_REPORTS_KEYS" in caught.value.detail


def test_reports_sealed_with_an_old_key_open_after_a_rotation(
    store: Engine, tagger: Tagger
) -> None:
    old = new_key()
    send(reports(store, tagger, keys=[old]), PublicReport(REPORT))
    with store.connect() as conn:
        item_id = conn.execute(sa.select(osint_items.c.id)).scalar_one()
    assert opened(store, item_id, [new_key(), old]) == REPORT
    with pytest.raises(Unavailable):
        opened(store, item_id, [new_key()])


# -- retention -----------------------------------------------------------------------------
def _review(store: Engine, item_id: str, state: str, at: dt.datetime | None) -> None:
    with store.begin() as conn:
        incident = conn.execute(sa.select(osint_items.c.incident_id)
                                .where(osint_items.c.id == item_id)).scalar_one()
        conn.execute(sa.update(osint_incidents).where(osint_incidents.c.id == incident)
                     .values(state=state, reviewed_at=at, reviewed_by="tahub_reviewer"))


def test_the_purge_deletes_texts_reviewed_longer_ago_than_the_retention(
    store: Engine, tagger: Tagger
) -> None:
    clock = Clock()
    service = reports(store, tagger, clock, retention_days=30)
    texts = {
        "old_accepted": "Two girls from Romania were made to beg at the station in Milan.",
        "old_rejected": "Someone sells counterfeit handbags near the cathedral every day.",
        "old_merged": "A farm near Almería keeps its pickers' passports, workers from Ghana.",
        "recent": "Men from Vietnam work nights at a nail bar in Leeds and sleep there.",
        "queued": "A boy of fourteen works in a car wash in Marseille every school day.",
        "due": "Women from Nigeria are kept in a flat in Turin and sent out at night.",
    }
    ids = {}
    for name, text in texts.items():
        send(service, PublicReport(text))
        with store.connect() as conn:
            ids[name] = conn.execute(sa.select(osint_items.c.id)
                                     .order_by(osint_items.c.collected_at.desc(),
                                               osint_items.c.id)
                                     .where(osint_items.c.id.not_in(list(ids.values())))
                                     ).scalars().first()
        clock.now += dt.timedelta(seconds=1)
    long_ago = clock.now - dt.timedelta(days=31)
    _review(store, ids["old_accepted"], "accepted", long_ago)
    _review(store, ids["old_rejected"], "rejected", long_ago)
    _review(store, ids["old_merged"], "merged", long_ago)
    _review(store, ids["recent"], "accepted", clock.now - dt.timedelta(days=29))
    with store.begin() as conn:
        conn.execute(sa.update(osint_items).where(osint_items.c.id == ids["due"])
                     .values(purge_after=clock.now - dt.timedelta(minutes=1)))
    purged = service.purge()
    assert purged.texts == 4
    with store.connect() as conn:
        sealed = dict(conn.execute(sa.select(osint_items.c.id, osint_items.c.sealed)).all())
        entries = conn.execute(sa.select(audit_entries)
                               .where(audit_entries.c.action == Action.REPORTS_PURGED)).all()
    kept = {name for name, item in ids.items() if sealed[item] is not None}
    assert kept == {"recent", "queued"}
    assert opened(store, ids["recent"]) == texts["recent"]
    (entry,) = entries
    assert entry.actor is None and entry.details == {"texts": 4, "retention_days": 30}
    # nothing left to purge: no new entry; a day later the recent one's retention ends
    assert service.purge().texts == 0
    clock.now += dt.timedelta(days=2)
    assert service.purge(actor="cli:ops").texts == 1
    with store.connect() as conn:
        actors = conn.execute(sa.select(audit_entries.c.actor)
                              .where(audit_entries.c.action == Action.REPORTS_PURGED)
                              .order_by(audit_entries.c.seq)).scalars().all()
    assert actors == [None, "cli:ops"]


def test_the_purge_removes_receipts_of_challenges_spent_without_a_report(
    store: Engine, tagger: Tagger
) -> None:
    clock = Clock()
    service = reports(store, tagger, clock)
    with store.begin() as conn:
        conn.execute(sa.insert(osint_receipts).values(
            id="rcp_lost", challenge="a" * 64, item_id=None,
            received_at=clock.now - dt.timedelta(minutes=30)))
    send(service, PublicReport(REPORT))
    assert service.purge().receipts == 1
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(osint_receipts)).scalar() == 1


def test_the_demo_makes_its_reports_key_once_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    from hub.demo import reports_key
    from hub.settings import Settings

    key = reports_key(tmp_path)
    path = tmp_path / "keys" / "reports.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert reports_key(tmp_path) == key
    assert Settings(data_dir=tmp_path, reports_keys=key).reports_key_list() == [key]


def test_the_admin_commands_make_a_key_and_purge(tmp_path: Path, tagger: Tagger) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app
    from hub.storage.db import make_engine, upgrade

    runner = CliRunner()
    made = runner.invoke(app, ["admin", "reports-key"])
    assert made.exit_code == 0
    key = made.stdout.strip()
    assert Sealer([key]).open(Sealer([key]).seal("x")) == "x"
    env = {"TAHUB_DATA_DIR": str(tmp_path), "TAHUB_LOG_LEVEL": "WARNING",
           "TAHUB_REPORTS_KEYS": key, "TAHUB_REPORTS_RETENTION_DAYS": "0"}
    engine = make_engine(f"sqlite:///{(tmp_path / 'tahub.db').resolve()}")
    try:
        upgrade(engine)
        service = reports(engine, tagger, keys=[key])
        send(service, PublicReport(REPORT))
        with engine.connect() as conn:
            item_id = conn.execute(sa.select(osint_items.c.id)).scalar_one()
        _review(engine, item_id, "rejected", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        purged = runner.invoke(app, ["admin", "purge-reports"], env=env)
        assert purged.exit_code == 0, purged.output
        assert "crowd report texts deleted: 1" in purged.stdout
        with engine.connect() as conn:
            assert conn.execute(sa.select(osint_items.c.sealed)).scalar_one() is None
            actor = conn.execute(sa.select(audit_entries.c.actor).where(
                audit_entries.c.action == Action.REPORTS_PURGED)).scalar_one()
        assert actor.startswith("cli:")
        placeholder = runner.invoke(app, ["admin", "purge-reports"],
                                    env={**env, "TAHUB_REPORTS_KEYS": "A" * 43 + "="})
        assert placeholder.exit_code == 1
        assert "TAHUB_REPORTS_KEYS" in placeholder.output and "placeholder" in placeholder.output
    finally:
        engine.dispose()
