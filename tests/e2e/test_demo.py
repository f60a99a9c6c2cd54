"""`tahub demo` on a fresh folder: five members, their data through the real connector path,
and the planted cross-partner patterns present in what the hub stored."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from hub.storage.db import make_engine, osint_incidents, osint_items
from tests.e2e.conftest import BIN, Deployment, clean_env, free_port, run

pytestmark = pytest.mark.e2e


def test_demo_loads_five_members_and_the_planted_patterns(
    tmp_path: Path, deployment: Deployment
) -> None:
    env = clean_env()
    env.update(TAHUB_PORT=str(free_port()), COLUMNS="200", **deployment.env)
    out = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "The hub is running at http://127.0.0.1:" in out.stdout
    assert "analyst.env" in out.stdout and "query run bank_alerts" in out.stdout
    # who to sign in as, page by page: a person for each role, the partner role included
    for page, email, role in (("/ui#/workspace", "analyst@northbank.example", "analyst"),
                              ("/ui#/governance", "officer@safepassage.example", "governance"),
                              ("/ui#/partner", "engineer@northbank.example", "partner")):
        address = out.stdout.index(page)
        assert re.search(rf"sign in as {email}  password \S{{12,}}  \(role {role}, ",
                         out.stdout[address:]), out.stdout
    assert "/docs" in out.stdout and "no sign-in to read" in out.stdout

    uploaded = json.loads((tmp_path / "tahub-demo-partners" / "demo.json").read_text())
    assert sorted(uploaded) == ["meridiana", "metpolice", "northbank", "safepassage", "swiftsend",
                                "swiftsend.bank_alerts"]  # SwiftSend: its flows and its alerts
    assert all(u["rows"] > 1000 for u in uploaded.values())

    (tmp_path / "stored").mkdir()
    objects = deployment.stored(tmp_path / "tahub-data", tmp_path / "stored")
    stored = {u["extract"]: next(p for p in objects if p.name.endswith(f"{u['extract']}.parquet"))
              for u in uploaded.values()}
    path = {slug: stored[u["extract"]] for slug, u in uploaded.items()}
    con = duckdb.connect()
    # The same funnel accounts flagged at both banks on one corridor: visible only pooled.
    (shared,) = con.execute(
        f"SELECT count(DISTINCT a.subject) FROM '{path['northbank']}' a "
        f"JOIN '{path['meridiana']}' b USING (subject) "
        "WHERE a.origin_country = 'RO' AND a.destination_country = 'GB' "
        "AND b.origin_country = 'RO' AND b.destination_country = 'GB'"
    ).fetchone() or (0,)
    assert shared == 40
    # The same persons at both banks (each bank has its own IBAN for them) and at the money-
    # transfer firm (no IBAN): one person only by the phone numbers and e-mail addresses
    # their rows share, as the hub links them (docs/privacy.md, "Persons across partners").
    alerts = [path[k] for k in ("northbank", "meridiana", "swiftsend.bank_alerts")]
    rows = _rows(con, alerts)
    assert _seen_twice(rows, ("IT", "GB"), ("subject", "customer_phone", "customer_email")
                       ) == 360
    assert _seen_twice(rows, ("IT", "GB"), ("subject", "customer_phone")) == 320  # e-mail: 40
    # By the unit the hub numbered from a row's first identifier (an IBAN, else the phone),
    # without linking, no customer of that corridor is at two partners...
    assert _seen_twice(rows, ("IT", "GB"), ("__unit",)) == 0
    # ...while the funnel accounts shared by IBAN are, linked or not.
    assert _seen_twice(rows, ("RO", "GB"), ("__unit",)) == 40
    assert _seen_twice(rows, ("RO", "GB"), ("subject", "customer_phone", "customer_email")
                       ) == 40
    # A route no single member sees: the NGO knows the origin, the police the destination.
    routes = con.execute(
        f"SELECT n.source_country, n.transit_country, p.destination_country, count(*) "
        f"FROM '{path['safepassage']}' n JOIN '{path['metpolice']}' p USING (subject) "
        "GROUP BY ALL"
    ).fetchall()
    assert routes == [("NG", "LY", "IT", 60)]
    alone = con.execute(
        f"SELECT count(n.destination_country), count(p.source_country) "
        f"FROM '{path['safepassage']}' n JOIN '{path['metpolice']}' p USING (subject)"
    ).fetchone()
    assert alone == (0, 0)  # neither side alone recorded both ends of these journeys

    # Each member also has an analyst client, kept apart from its upload client.
    partners = tmp_path / "tahub-demo-partners"
    for slug in sorted({key.split(".")[0] for key in uploaded}):  # each member once
        analyst, partner = (_env(partners / slug / name) for name in ("analyst.env",
                                                                       "partner.env"))
        assert (partners / slug / "analyst.env").stat().st_mode & 0o777 == 0o600
        assert analyst["TAHUB_CLIENT_ID"] != partner["TAHUB_CLIENT_ID"]
        assert analyst["TAHUB_HUB_URL"] == partner["TAHUB_HUB_URL"]
        people = _env(partners / slug / "people.env")  # people who sign in, not systems
        assert people["ANALYST_EMAIL"] == f"analyst@{slug}.example"
        assert len(people["ANALYST_PASSWORD"]) >= 12
        assert people["ENGINEER_EMAIL"] == f"engineer@{slug}.example"  # role partner
        assert people["ENGINEER_PASSWORD"] in out.stdout or slug != "northbank"
        assert (partners / slug / "people.env").stat().st_mode & 0o777 == 0o600
    for slug in ("safepassage", "metpolice"):  # two officers of two organisations
        assert _env(partners / slug / "governance.env")["TAHUB_CLIENT_ID"]
        assert _env(partners / slug / "people.env")["OFFICER_EMAIL"] == f"officer@{slug}.example"
    reviewer = _env(partners / "safepassage" / "people.env")  # the NGO's reviewer
    assert reviewer["REVIEWER_EMAIL"] == "reviewer@safepassage.example"
    assert reviewer["REVIEWER_PASSWORD"] in out.stdout
    # The demo's open sources wait for that reviewer: six saved articles (the same wire
    # story saved twice is one incident with two sources) and three crowd reports, sealed;
    # the reviewer has accepted that story and the first report, published as the incidents
    # dataset (one extract of the hub's "Open sources", beside the members' six).
    collected = _collected(deployment, tmp_path)
    assert collected == {"article": 6, "report": 3, "incidents": 8, "sealed": 3,
                         "accepted": 2, "accepted_sources": 3}
    lost = _env(partners / "metpolice" / "analyst.env")["TAHUB_CLIENT_ID"]
    (partners / "metpolice" / "analyst.env").unlink()  # an older demo folder: added again

    # Running it again reuses the members, and the uploads are idempotent.
    again = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stdout
    shutil.rmtree(tmp_path / "stored")
    (tmp_path / "stored").mkdir()
    assert len(deployment.stored(tmp_path / "tahub-data", tmp_path / "stored")) == 6 + 1
    assert _env(partners / "metpolice" / "analyst.env")["TAHUB_CLIENT_ID"] != lost
    assert _collected(deployment, tmp_path) == collected  # nothing collected twice


def _collected(deployment: Deployment, root: Path) -> dict[str, int]:
    """Items of the open-source collection by kind, their incidents, and sealed texts."""
    url = (deployment.env.get("TAHUB_DATABASE_URL")
           or f"sqlite:///{root / 'tahub-data' / 'tahub.db'}")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            kinds: dict[str, int] = dict(conn.execute(sa.select(osint_items.c.kind, sa.func.count())
                                      .group_by(osint_items.c.kind)).all())
            incidents = conn.execute(sa.select(sa.func.count(
                sa.distinct(osint_items.c.incident_id)))).scalar_one()
            sealed = conn.execute(sa.select(sa.func.count()).where(
                osint_items.c.sealed.is_not(None), osint_items.c.text.is_(None))).scalar_one()
            accepted = list(conn.execute(sa.select(osint_incidents.c.id).where(
                osint_incidents.c.state == "accepted")).scalars())
            told = conn.execute(sa.select(sa.func.count()).where(
                osint_items.c.incident_id.in_(accepted))).scalar_one()
    finally:
        engine.dispose()
    return {**kinds, "incidents": incidents, "sealed": sealed, "accepted": len(accepted),
            "accepted_sources": told}


def _rows(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[dict[str, Any]]:
    files = ", ".join(f"'{p}'" for p in paths)
    cursor = con.execute(f"SELECT * FROM read_parquet([{files}], union_by_name = true)")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _seen_twice(rows: list[dict[str, Any]], corridor: tuple[str, str],
                identifiers: tuple[str, ...]) -> int:
    """Persons flagged on ``corridor`` by two or more partners, where rows that share a
    value of one of ``identifiers`` are one person (transitively: union-find, written
    independently of the hub's linkage)."""
    parent: dict[tuple[str, Any], tuple[str, Any]] = {}

    def find(x: tuple[str, Any]) -> tuple[str, Any]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for row in rows:
        ids = [(c, row[c]) for c in identifiers if row[c] is not None]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    partners: dict[tuple[str, Any], set[str]] = defaultdict(set)
    for row in rows:
        ids = [(c, row[c]) for c in identifiers if row[c] is not None]
        if ids and (row["origin_country"], row["destination_country"]) == corridor:
            partners[find(ids[0])].add(row["__partner"])
    return sum(len(p) >= 2 for p in partners.values())


def _env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
