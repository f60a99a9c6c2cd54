"""DP queries end to end: `tahub demo --no-serve` data, `tahub serve`, analysts over HTTP.

The planted cross-partner patterns of the demo must show up in differentially private
answers at the shipped policies' costs: the 40 customers flagged at both banks on RO->GB
(bank_alerts, linked_units), and the NG -> LY -> IT route that only pooling the NGO's and
the police's case records shows (case_records: the NGO knows where people came from, the
police where they ended up, both the transit country).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.e2e.conftest import BIN, MODES, Deployment, clean_env, deployed, free_port, run

pytestmark = pytest.mark.e2e


class Demo:
    def __init__(self, folder: Path, env: dict[str, str], url: str,
                 deployment: Deployment) -> None:
        self.folder, self.env, self.url, self.deployment = folder, env, url, deployment

    def exact(self, sql: str) -> dict[Any, int]:
        """The exact answer, key -> count, of ``sql`` over the case_records extracts the hub
        stored (``cases``: their canonical copies with the bounding columns)."""
        into = self.folder / "stored"
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir()
        files = [str(p) for p in self.deployment.stored(self.folder / "tahub-data", into)
                 if "case_records" in p.as_posix()]
        con = duckdb.connect()
        con.read_parquet(files, union_by_name=True).create_view("cases")
        return {k: int(n) for k, n in con.execute(sql).fetchall()}

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
               COLUMNS="200", **deployment.env)
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


def _released(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = http.post("/v1/queries", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _ranked(result: dict[str, Any], measure: str) -> list[tuple[float, tuple[Any, ...]]]:
    dims = result["dimensions"]
    return sorted(((r[measure]["value"], tuple(r[d] for d in dims)) for r in result["rows"]),
                  reverse=True)


def test_linked_customers_on_the_planted_corridor(demo: Demo) -> None:
    with demo.analyst("northbank") as http:
        estimate = http.post("/v1/queries/estimate", json={
            "dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
            "measures": ["linked_units"], "cost": "1/5"})
        assert estimate.status_code == 200, estimate.text
        assert estimate.json()["would_be_refused"] is None
        result = _released(http, {
            "dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
            "measures": ["linked_units"], "cost": "1/5"})
        budget = http.get("/v1/budgets/bank_alerts").json()
    assert result["cells"] == len(result["rows"]) == 249 * 249  # every corridor, zeros too
    h = result["measures"][0]["halfwidth_95"]
    assert h < 15  # sigma = sqrt(10) / sqrt(2 * 0.2) = 5
    top_value, top_cell = _ranked(result, "linked_units")[0]
    assert top_cell == ("RO", "GB"), _ranked(result, "linked_units")[:3]
    assert abs(top_value - 40) <= 2 * h
    assert budget["member"]["spent"] == "1/5"


def test_the_pooled_route_ng_ly_it(demo: Demo) -> None:
    transit = ["LY", "TR", "AT", "HU", "RS", "MX", "EG", "NE"]
    # people known to both the NGO and the police, by transit country
    with demo.analyst("northbank") as http:
        linked = _released(http, {
            "dataset": "case_records", "group_by": ["transit_country"],
            "measures": ["linked_units"], "filters": {"transit_country": transit},
            "cost": "1/2"})
        # where the people who transited LY came from (the NGO's records)
        sources = _released(http, {
            "dataset": "case_records", "group_by": ["source_country"], "measures": ["count"],
            "filters": {"transit_country": ["LY"],
                        "source_country": ["NG", "PK", "PH", "ER", "BR", "RO", "SY", "IN"]},
            "cost": "1/2"})
    # where they ended up (the police's records); another member's analyst (monthly cap)
    with demo.analyst("safepassage") as http:
        destinations = _released(http, {
            "dataset": "case_records", "group_by": ["destination_country"],
            "measures": ["count"],
            "filters": {"transit_country": ["LY"],
                        "destination_country": ["IT", "AE", "DE", "US", "ES", "GR", "BE"]},
            "cost": "1/2"})
    assert linked["accounting"] == "pure"
    assert linked["measures"][0]["mechanism"] == "discrete_laplace"
    # The exact answers over the bounded rows (policy: at most 4 rows per case): the 60
    # planted people, plus background cases that happen to share a cell.
    bounded = "FROM cases WHERE __seq <= 4"
    exact = {
        "linked_units": demo.exact(
            "SELECT transit_country, count(*) FROM (SELECT transit_country, __unit "
            f"{bounded} GROUP BY ALL HAVING min(__partner) <> max(__partner)) GROUP BY ALL"),
        "sources": demo.exact(f"SELECT source_country, count(*) {bounded} "
                              "AND transit_country = 'LY' GROUP BY ALL"),
        "destinations": demo.exact(f"SELECT destination_country, count(*) {bounded} "
                                   "AND transit_country = 'LY' GROUP BY ALL"),
    }
    for name, result, measure, expected in (
        ("linked_units", linked, "linked_units", ("LY",)),
        ("sources", sources, "count", ("NG",)),
        ("destinations", destinations, "count", ("IT",)),
    ):
        ranked = _ranked(result, measure)
        h = result["measures"][0]["halfwidth_95"]
        # the planted key is first, or within the noise of the first (a close runner-up, such
        # as RO beside NG, can outrank it by chance: seen at 83 against 82)
        leaders = [key for value, key in ranked if value >= ranked[0][0] - 2 * h]
        assert expected in leaders, ranked[:3]
        truth = exact[name][expected[0]]
        assert truth >= 60  # the planted route is in the data
        assert abs(ranked[0][0] - truth) <= 2 * h, (truth, ranked[:3])
