"""The incidents dataset (hub.osint.incidents): accepted incidents published as the hub's own
extract through the real ingest path, replaced on each publication, and queried like any
dataset by the real query engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli.main import app as cli
from hub.contracts.model import ContractRegistry
from hub.identity.service import IdentityService
from hub.ingest.service import IngestService
from hub.osint.incidents import DATASET, OPEN_SOURCES, IncidentPublisher, incident_row
from hub.query.engine import QueryEngine
from hub.query.sql import Part
from hub.settings import Settings
from hub.storage.db import (
    make_engine,
    organisations,
    osint_incidents,
    osint_items,
    upgrade,
    utcnow,
)
from hub.storage.objects import open_store
from hub.storage.sandbox import DuckLimits
from tests.hub.pooled import plan

ROUTE = {"exploitation_type": ["SexualExploitation"],
         "locations": [{"country": "NG", "role": "origin"}, {"country": "LY", "role": "transit"},
                       {"country": "IT", "role": "destination"}],
         "recruitment": ["ThroughOnlineSocialNetworks"], "transport": ["Road", "Water"],
         "control": ["DebtBondage", "WithholdsDocuments"], "age_group": "adult",
         "age_band": None, "gender": ["Feminine"], "period": "2026-02"}
RAID = {"exploitation_type": ["ForcedLabour"], "locations": [{"country": "ES", "role":
        "destination"}], "age_group": None, "gender": [], "period": "2026-03"}


class Hub:
    def __init__(self, root: Path) -> None:
        self.settings = Settings(data_dir=root / "data")
        self.settings.data_dir.mkdir(parents=True)
        self.db = make_engine(self.settings.database_url)
        upgrade(self.db)
        self.registry = ContractRegistry.load()
        store = open_store(self.settings.storage, self.settings)
        self.ingest = IngestService(engine=self.db, store=store, registry=self.registry,
                                    settings=self.settings)
        self.engine = QueryEngine(store=store, ingest=self.ingest, settings=self.settings)
        self.publisher = IncidentPublisher(
            self.db, ingest=self.ingest, registry=self.registry,
            identity=IdentityService(engine=self.db, settings=self.settings),
            limits=DuckLimits.of(self.settings))

    def incident(self, coded: dict[str, Any] | None, kinds: list[str],
                 state: str = "accepted", published: list[dt.datetime | None] = ()) -> str:
        incident = f"inc_{len(self.rows()) + 1:04d}_{state}"
        now = utcnow()
        with self.db.begin() as conn:
            conn.execute(sa.insert(osint_incidents).values(
                id=incident, created_at=now, updated_at=now, state=state, coded=coded))
            for i, kind in enumerate(kinds):
                conn.execute(sa.insert(osint_items).values(
                    id=f"itm_{incident}_{i}", kind=kind, incident_id=incident,
                    collected_at=now, fingerprint=f"{incident}{i}",
                    published_at=published[i] if i < len(published) else None))
        return incident

    def rows(self) -> list[str]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(osint_incidents.c.id)).scalars())


def test_a_row_holds_the_reviewed_codes_and_the_route_by_role() -> None:
    march = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
    row = incident_row("inc_1", ROUTE, {"article", "report"}, 3, march)
    assert row["incident"].startswith("05170517.") and len(row["incident"]) == 73
    assert (row["source_country"], row["transit_country"], row["destination_country"]) == (
        "NG", "LY", "IT")
    assert row["transport"] == ["Road", "Water"] and row["means_of_control"] == [
        "DebtBondage", "WithholdsDocuments"]
    assert row["source_type"] == "news_and_crowd" and row["sources"] == 3
    assert incident_row("inc_1", ROUTE, {"article"}, 1, march)["source_type"] == "news"
    assert row["age_band"] == "Unknown" and row["age_group"] == "adult"
    assert row["period"] == "2026-02"  # the coded month, not the reported one
    crowd = incident_row("inc_2", RAID | {"period": None}, {"report"}, 1, march)
    assert crowd["period"] == "2026-03"  # none coded: the month it was reported
    assert crowd["source_type"] == "crowd" and crowd["source_country"] is None
    assert crowd["age_group"] == "unknown" and crowd["gender"] is None


def test_accepted_incidents_are_published_replaced_and_queried_like_any_dataset(
    tmp_path: Path
) -> None:
    hub = Hub(tmp_path)
    assert hub.publisher.publish().extract is None  # nothing accepted yet
    hub.incident(ROUTE, ["article", "article"])
    hub.incident(RAID, ["report"])
    hub.incident(ROUTE, ["article"], state="queued")  # not reviewed: not published
    hub.incident(None, ["article"], state="rejected")
    first = hub.publisher.publish()
    assert first.new and first.rows == 2
    (extract,) = hub.ingest.visible_extracts(DATASET)
    assert extract.id == first.extract
    table = pq.read_table(hub.ingest._store.local_path(extract.object_key))
    assert sorted(table.column("source_type").to_pylist()) == ["crowd", "news"]
    assert hub.publisher.publish() == type(first)(first.extract, 2, False)  # idempotent
    hub.incident(RAID, ["article"])
    second = hub.publisher.publish()
    assert second.new and second.rows == 3 and second.withdrawn == (first.extract,)
    assert [e.id for e in hub.ingest.visible_extracts(DATASET)] == [second.extract]
    raid = hub.incident(RAID, ["report"])  # a fourth, then rejected on a second look
    fourth = hub.publisher.publish()
    with hub.db.begin() as conn:
        conn.execute(sa.update(osint_incidents).where(osint_incidents.c.id == raid)
                     .values(state="rejected"))
    back = hub.publisher.publish()  # the second's content again, committed anew
    assert back.new and back.rows == 3 and back.withdrawn == (fourth.extract,)
    assert [e.id for e in hub.ingest.visible_extracts(DATASET)] == [back.extract]
    contract = hub.registry.get(DATASET)
    destinations = ("ES", "IT", "NG")
    p = plan(contract, [("destination_country", destinations), ("source_type",
                                                                  ("crowd", "news"))],
             max_rows=1)
    (counts,) = hub.engine.aggregate(p, [Part("count")])
    assert counts == [1, 1, 0, 1, 0, 0]  # ES crowd, ES news, IT news
    assert hub.engine.partners(DATASET) == 1
    with hub.db.connect() as conn:  # one organisation contributes them, made once
        names = list(conn.execute(sa.select(organisations.c.name)).scalars())
    assert names.count(OPEN_SOURCES) == 1


def test_an_uncoded_month_is_the_first_sources_and_rows_the_contract_refuses_are_left_out(
    tmp_path: Path
) -> None:
    """One incident the contract refuses (a month before its range, a code no domain holds)
    does not hold back the others: it is left out, named with the reason."""
    hub = Hub(tmp_path)
    undated = hub.incident(RAID | {"period": None}, ["report", "article", "article"],
                           published=[None, dt.datetime(2026, 1, 30, tzinfo=dt.UTC),
                                      dt.datetime(2025, 12, 2, tzinfo=dt.UTC)])
    old = hub.incident(ROUTE | {"period": "2009-07"}, ["article"])
    odd = hub.incident(RAID | {"transport": ["Camel"]}, ["report"])
    fine = hub.incident(ROUTE, ["article"])
    done = hub.publisher.publish()
    assert done.new and done.rows == 2
    assert [incident for incident, _ in done.left_out] == [old, odd]
    reasons = dict(done.left_out)
    assert reasons[old].startswith("period: ") and "2009-07" not in reasons[old]
    assert reasons[odd].startswith("transport: ")
    (extract,) = hub.ingest.visible_extracts(DATASET)
    table = pq.read_table(hub.ingest._store.local_path(extract.object_key))
    assert sorted(table.column("period").to_pylist()) == ["2025-12", "2026-02"]
    assert undated != fine and sorted(table.column("sources").to_pylist()) == [1, 3]
    out = CliRunner().invoke(cli, ["review", "publish"],
                             env={"TAHUB_DATA_DIR": str(hub.settings.data_dir)})
    assert out.exit_code == 0, out.output
    assert out.stdout == (f"the 2 accepted incidents are published already "
                          f"(extract {done.extract})\n")
    told = [line for line in out.stderr.splitlines() if line.startswith("left out")]
    assert [line.split(",")[0] for line in told] == [
        f"left out incident {old}", f"left out incident {odd}"]
