"""`tahub demo` on a fresh folder: five members, their data through the real connector path,
and the planted cross-partner patterns present in what the hub stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

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

    uploaded = json.loads((tmp_path / "tahub-demo-partners" / "demo.json").read_text())
    assert sorted(uploaded) == ["meridiana", "metpolice", "northbank", "safepassage", "swiftsend"]
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
    for slug in uploaded:
        analyst, partner = (_env(partners / slug / name) for name in ("analyst.env",
                                                                       "partner.env"))
        assert (partners / slug / "analyst.env").stat().st_mode & 0o777 == 0o600
        assert analyst["TAHUB_CLIENT_ID"] != partner["TAHUB_CLIENT_ID"]
        assert analyst["TAHUB_HUB_URL"] == partner["TAHUB_HUB_URL"]
        people = _env(partners / slug / "people.env")  # people who sign in, not systems
        assert people["ANALYST_EMAIL"] == f"analyst@{slug}.example"
        assert len(people["ANALYST_PASSWORD"]) >= 12
        assert (partners / slug / "people.env").stat().st_mode & 0o777 == 0o600
    for slug in ("safepassage", "metpolice"):  # two officers of two organisations
        assert _env(partners / slug / "governance.env")["TAHUB_CLIENT_ID"]
        assert _env(partners / slug / "people.env")["OFFICER_EMAIL"] == f"officer@{slug}.example"
    lost = _env(partners / "metpolice" / "analyst.env")["TAHUB_CLIENT_ID"]
    (partners / "metpolice" / "analyst.env").unlink()  # an older demo folder: added again

    # Running it again reuses the members, and the uploads are idempotent.
    again = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stdout
    shutil.rmtree(tmp_path / "stored")
    (tmp_path / "stored").mkdir()
    assert len(deployment.stored(tmp_path / "tahub-data", tmp_path / "stored")) == 5
    assert _env(partners / "metpolice" / "analyst.env")["TAHUB_CLIENT_ID"] != lost


def _env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
