"""DP queries end to end: `tahub demo --no-serve` data, `tahub serve`, analysts over HTTP.

The planted cross-partner patterns of the demo must show up in differentially private
answers at the shipped policies' costs: the 360 persons flagged on IT -> GB by two or more of
the two banks and the money-transfer firm, with a different IBAN at each bank and linked only
by the phone numbers and e-mail addresses they gave (bank_alerts, linked_units: first of the
corridors, and exactly 360 in the pooled data before noise, against none without linking),
the 40 accounts flagged at both banks on RO->GB, and the NG -> LY -> IT route that only
pooling the NGO's and the police's case records shows (case_records: the NGO knows where
people came from, the police where they ended up, both the transit country), first of one
route query.

The hub runs the shipped policies with their per-query costs and caps, and budgets raised
(``_policies``) so that one module can release the same question many times over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.e2e.conftest import BIN, MODES, Deployment, clean_env, deployed, free_port, run

pytestmark = pytest.mark.e2e
SHIPPED = Path(__file__).resolve().parents[2] / "policies"
# The persons the demo plants across partners (hub/demo/synthetic.py): flagged on this
# corridor by two or more of Northbank, Banca Meridiana and SwiftSend, each at most 9 times
# (within bank_alerts' bound of 10 rows, so that every row of theirs is kept).
LINKED_CORRIDOR, LINKED = ("IT", "GB"), 360


class Demo:
    def __init__(self, folder: Path, env: dict[str, str], url: str,
                 deployment: Deployment) -> None:
        self.folder, self.env, self.url, self.deployment = folder, env, url, deployment

    def rows(self, sql: str, params: Sequence[Any] = (), *, dataset: str = "case_records",
             view: str = "cases") -> list[tuple[Any, ...]]:
        """The rows of ``sql`` over the ``dataset`` extracts the hub stored (``view``: their
        canonical copies with the bounding columns)."""
        into = self.folder / "stored"
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir()
        files = [str(p) for p in self.deployment.stored(self.folder / "tahub-data", into)
                 if dataset in p.as_posix()]
        con = duckdb.connect()
        con.read_parquet(files, union_by_name=True).create_view(view)
        return con.execute(sql, list(params)).fetchall()

    def analyst(self, slug: str) -> httpx.Client:
        """An analyst client of a demo member: the demo's analyst.env, else a new client."""
        creds = _env_file(self.folder / "tahub-demo-partners" / slug / "analyst.env")
        if not creds:
            out = run([str(BIN / "tahub"), "admin", "member", "add", f"Analysts of {slug}",
                       "--kind", "other", "--role", "analyst", "--json"], self.env,
                      cwd=self.folder)
            assert out.returncode == 0, out.stderr
            made = json.loads(out.stdout)
            creds = {"TAHUB_CLIENT_ID": made["client_id"],
                     "TAHUB_CLIENT_SECRET": made["client_secret"]}
        token = httpx.post(self.url + "/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(creds["TAHUB_CLIENT_ID"], creds["TAHUB_CLIENT_SECRET"]))
        assert token.status_code == 200, token.text
        return httpx.Client(base_url=self.url, timeout=120, headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})


def _env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module", params=MODES)
def demo(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[Demo]:
    with deployed(request.param, request) as deployment:
        yield from _demo(tmp_path_factory, deployment)


def _demo(tmp_path_factory: pytest.TempPathFactory, deployment: Deployment) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("dp-demo")
    port = free_port()
    env = clean_env()
    env.update(TAHUB_PORT=str(port), TAHUB_DATA_DIR=str(folder / "tahub-data"),
               TAHUB_POLICIES_DIR=str(_policies(folder / "policies")), COLUMNS="200",
               **deployment.env)
    out = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=folder, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    log = (folder / "hub.log").open("ab")
    proc = subprocess.Popen([str(BIN / "tahub"), "serve"], env=env, cwd=folder,
                            stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError((folder / "hub.log").read_text())
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield Demo(folder, env, url, deployment)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _policies(folder: Path) -> Path:
    """The shipped policies, their budgets (not their per-query caps) raised a hundredfold."""
    folder.mkdir()
    for path in SHIPPED.glob("*.yaml"):
        text = path.read_text()
        text = re.sub(r'(?m)^(  (?:global|per_member|per_month): )"([0-9/]+)"',
                      lambda m: f'{m[1]}"{Fraction(m[2]) * 100}"', text)
        (folder / path.name).write_text(text)
    return folder


def _released(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = http.post("/v1/queries", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _kept(table: str, max_rows: int) -> str:
    """The rows the hub keeps (docs/privacy.md): per unit, its max_rows rows of smallest
    priority, written independently of the engine."""
    return (f"(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY __unit ORDER BY "
            f"__prio) AS __rank FROM {table}) WHERE __rank <= {max_rows})")


def test_linked_customers_on_the_planted_corridor(demo: Demo) -> None:
    query = {"dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
             "measures": ["linked_units"], "cost": "1/5"}
    with demo.analyst("northbank") as http:
        estimate = http.post("/v1/queries/estimate", json=query)
        assert estimate.status_code == 200, estimate.text
        assert estimate.json()["would_be_refused"] is None
        assert estimate.json()["keys"]["mode"] == "selected"
        result = _released(http, query)
        ranked = _released(http, {**query, "top": {"k": 3}})
        budget = http.get("/v1/budgets/bank_alerts").json()
    # 62,001 corridors would be mostly noise: only corridors a DP threshold chose are listed
    assert result["cells"] == 249 * 249 and 0 < len(result["rows"]) < 1000
    assert result["keys"]["mode"] == "selected" and result["cost"]["delta"] == "1/10000000"
    listed = {(r["origin_country"], r["destination_country"]): r["linked_units"]
              for r in result["rows"]}
    h = result["measures"][0]["halfwidth_95"]
    assert h < 15
    assert LINKED_CORRIDOR in listed and listed[LINKED_CORRIDOR]["distinguishable"]
    assert abs(listed[LINKED_CORRIDOR]["value"] - LINKED) <= 2 * h
    assert ("RO", "GB") in listed and listed[("RO", "GB")]["distinguishable"]
    assert abs(listed[("RO", "GB")]["value"] - 40) <= 2 * h
    # one ranked query finds the corridors first, and says how sure that is
    first, second = ranked["rows"][:2]
    assert (first["origin_country"], first["destination_country"]) == LINKED_CORRIDOR
    assert first["rank"]["position"] == 1 and first["rank"]["low"] == 1
    assert (second["origin_country"], second["destination_country"]) == ("RO", "GB")
    assert budget["member"]["spent"] == "2/5"


def test_persons_across_partners_are_linked_before_any_noise(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's own engine, in process on the hub's data, counts the planted persons
    exactly (count_units, linked_units of the pooled rows, no noise); the units the hub
    numbered per identifier, without linking persons, put none of them at two partners."""
    from hub.api.app import build_services
    from hub.query.sql import Part
    from hub.settings import Settings
    from tests.hub.pooled import plan

    for name in [k for k in os.environ if k.startswith("TAHUB_")]:
        monkeypatch.delenv(name)
    for name, value in demo.env.items():
        if name.startswith("TAHUB_"):
            monkeypatch.setenv(name, value)
    services = build_services(Settings(), migrate=False)
    try:
        alerts = services.registry.get("bank_alerts")

        def exact(origin: str, destination: str) -> list[int]:
            corridor = plan(alerts, [], {"origin_country": (origin,),
                                         "destination_country": (destination,)}, max_rows=10)
            parts = [Part("count_units"), Part("linked_units")]
            return [cells[0] for cells in services.query_engine.aggregate(corridor, parts)]

        units, linked = exact(*LINKED_CORRIDOR)
        assert linked == LINKED  # every planted person, each once, at two or more partners
        assert units == LINKED + 150  # and the corridor's customers known to one partner only
        assert exact("RO", "GB")[1] == 40  # the accounts both banks flagged
    finally:
        services.close()
    # Without linking: the hub's units (a row's IBAN, else its phone), seen at two partners.
    unlinked = demo.rows(
        "SELECT count(*) FROM (SELECT __unit FROM alerts WHERE origin_country = ? AND "
        "destination_country = ? GROUP BY __unit HAVING count(DISTINCT __partner) >= 2)",
        LINKED_CORRIDOR, dataset="bank_alerts", view="alerts")
    assert unlinked == [(0,)]


def test_the_linked_persons_are_released_first_with_their_number(demo: Demo) -> None:
    """20 fresh releases (ranked corridors, top 1 to 20): the planted corridor comes first in
    each, distinguishable from zero, and its 95% interval holds the planted 360 in most."""
    releases = []
    with demo.analyst("swiftsend") as http:  # the money-transfer firm's analysts
        for k in range(1, 21):
            result = _released(http, {
                "dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
                "measures": ["linked_units"], "top": {"k": k}, "cost": "1/5"})
            assert result["reused"] is False
            releases.append(result["rows"][0])
    assert all((r["origin_country"], r["destination_country"]) == LINKED_CORRIDOR
               and r["rank"]["low"] == 1 for r in releases)
    cells = [r["linked_units"] for r in releases]
    assert all(c["distinguishable"] and c["low"] > 0 for c in cells)
    covered = sum(c["low"] <= LINKED <= c["high"] for c in cells)
    assert covered >= 15  # 95% intervals: 6 or more misses of 20 has probability 3e-4


def _routes(demo: Demo) -> Counter[tuple[str | None, ...]]:
    """Persons per route over the stored case records, assembled as docs/queries.md says
    (a stage a row leaves empty comes from the person's other kept rows when they agree),
    written in Python, independently of the engine's SQL."""
    rows = demo.rows(f"SELECT __unit, source_country, transit_country, destination_country "
                     f"FROM {_kept('cases', 4)}")
    by_unit: dict[Any, list[tuple[Any, ...]]] = {}
    for unit, *stages in rows:
        by_unit.setdefault(unit, []).append(tuple(stages))
    count: Counter[tuple[str | None, ...]] = Counter()
    for stages in by_unit.values():
        known = [{s[i] for s in stages} - {None} for i in range(3)]
        filled = {tuple(s[i] if s[i] is not None else
                        (next(iter(known[i])) if len(known[i]) == 1 else None)
                        for i in range(3)) for s in stages}
        count.update(filled)
    return count


def test_the_pooled_route_ng_ly_it_comes_first_of_one_route_query(demo: Demo) -> None:
    truth = _routes(demo)
    assert truth[("NG", "LY", "IT")] >= 60  # the planted people, once pooled
    assert max(n for route, n in truth.items() if route != ("NG", "LY", "IT")) < 20
    # neither partner alone has the route: the NGO lacks destinations, the police sources
    with demo.analyst("northbank") as http:
        firsts = []
        for k in range(1, 26):  # 50 distinct questions: 50 fresh releases at the policy cost
            for measures in (["count_units"], ["count_units", "linked_units"]):
                result = _released(http, {"dataset": "case_records", "route": True,
                                          "measures": measures, "top": {"k": k},
                                          "cost": "1/5"})
                assert result["reused"] is False and result["keys"]["mode"] == "selected"
                assert result["route"]["stages"] == ["source_country", "transit_country",
                                                     "destination_country"]
                firsts.append(result["rows"][0] if result["rows"] else None)
    top = [r for r in firsts
           if r and (r["source_country"], r["transit_country"], r["destination_country"])
           == ("NG", "LY", "IT")]
    assert len(top) >= 0.95 * len(firsts)
    planted = truth[("NG", "LY", "IT")]
    covered = sum(r["count_units"]["low"] <= planted <= r["count_units"]["high"] for r in top)
    assert covered >= 0.85 * len(top)  # 95% intervals, 50 releases
    assert all(r["count_units"]["distinguishable"] and r["rank"]["low"] == 1 for r in top)
