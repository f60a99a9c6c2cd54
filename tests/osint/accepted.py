"""Accepted incidents written straight to a hub's store, for tests that need the incidents
dataset with known codes (the reviewers' queue has its own tests): then published by the
hub's own publisher (hub.osint.incidents) through the real ingest path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from hub.storage.db import osint_incidents, osint_items, utcnow

PUBLISHED = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def accept(engine: sa.Engine, incidents: Iterable[tuple[str, dict[str, Any], list[str]]]
           ) -> None:
    """Each (id, coded record, item kinds) as an accepted incident told by those items
    (``article`` or ``report``), published on :data:`PUBLISHED`."""
    now = utcnow()
    with engine.begin() as conn:
        for incident, coded, kinds in incidents:
            conn.execute(sa.insert(osint_incidents).values(
                id=incident, created_at=now, updated_at=now, state="accepted", coded=coded))
            for i, kind in enumerate(kinds):
                conn.execute(sa.insert(osint_items).values(
                    id=f"itm_{incident}_{i}", kind=kind, incident_id=incident,
                    collected_at=now, fingerprint=f"{incident}{i}", published_at=PUBLISHED))


def route(origin: str | None, transit: str | None, destination: str | None,
          exploitation: str = "SexualExploitation", period: str = "2026-03") -> dict[str, Any]:
    """A coded record of one route (the countries with their roles)."""
    stages = (("origin", origin), ("transit", transit), ("destination", destination))
    return {"exploitation_type": [exploitation], "period": period,
            "locations": [{"country": c, "role": r} for r, c in stages if c]}
