"""An analyst's journey, end to end: a real hub process, two banks pushing through the real
connector CLI, and `tahub query` finding the customers both banks flagged on RO -> GB; then
the demo's data (`tahub demo`), where a ranked route query finds the NG -> LY -> IT route that
only the NGO's and the police's records pooled show, and top lists print no noise as a finding.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from stdnum import iban as stdiban

from tests.e2e.conftest import BIN, MODES, Hub, clean_env, deployed, free_port, run
from tests.e2e.test_partner_journey import MAPPING

pytestmark = pytest.mark.e2e

SHARED = 40  # customers flagged at both banks on RO -> GB
QUESTION = ["bank_alerts", "--by", "destination_country", "--filter", "origin_country=RO",
            "--measure", "linked_units", "--cost", "1/5"]


def _iban(i: int) -> str:
    bban = f"NWBK{i:014d}"
    return "GB" + stdiban.calc_check_digits("GB00" + bban) + bban


def _bank(folder: Path, own: int, spaced: bool, other: tuple[str, str]) -> tuple[Path, Path]:
    """SHARED customers on RO -> GB (spelt this bank's way), then ``own`` of its own."""
    shared = [_iban(i) for i in range(SHARED)]
    shared = [" ".join(s[j:j + 4] for j in range(0, 22, 4)) if spaced else s.lower()
              for s in shared]
    ibans = shared + [_iban(10_000 + own * 7 + i) for i in range(own)]
    n = len(ibans)
    table = pa.table({
        "customer_iban": ibans,
        "rule": ["R01" if i % 2 else "R02" for i in range(n)],
        "from_country": ["RO"] * SHARED + [other[0]] * own,
        "to_country": ["GB"] * SHARED + [other[1]] * own,
        "amount_eur": [f"{100 + i % 900}.50" for i in range(n)],
        "alert_date": ["2025-03-14"] * n,
    })
    folder.mkdir()
    csv, mapping = folder / "alerts.csv", folder / "alerts.mapping.yaml"
    pacsv.write_csv(table, csv)
    mapping.write_text(MAPPING)
    return csv, mapping


def _member(hub: Hub, name: str, *roles: str) -> dict[str, str]:
    args = [str(BIN / "tahub"), "admin", "member", "add", name, "--kind", "bank"]
    for role in roles:
        args += ["--role", role]
    out = run([*args, "--json"], hub.env)
    assert out.returncode == 0, out.stderr
    creds: dict[str, str] = json.loads(out.stdout)
    return creds


def _analyst_env(hub: Hub, creds: dict[str, str]) -> dict[str, str]:
    return {**hub.env, "TAHUB_HUB_URL": hub.url, "TAHUB_CLIENT_ID": creds["client_id"],
            "TAHUB_CLIENT_SECRET": creds["client_secret"]}


def _query(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    out = run([str(BIN / "tahub"), "query", *args], env)
    return out.returncode, out.stdout, out.stderr


def _first_row(stdout: str) -> str:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    return lines[start + 1]


def test_an_analyst_finds_the_customers_both_banks_flagged(
    hub: Hub, network_key: Path, tmp_path: Path
) -> None:
    bank_a = _member(hub, "Bank A", "partner", "analyst")  # one client, both roles
    bank_b = _member(hub, "Bank B", "partner")
    for creds, spaced, other in ((bank_a, True, ("BG", "DE")), (bank_b, False, ("NG", "IT"))):
        name = creds["org_name"].replace(" ", "_")
        csv, mapping = _bank(tmp_path / name, 160 if spaced else 90, spaced, other)
        pushed = run([str(BIN / "tahub-connect"), "push", str(csv), "--mapping", str(mapping),
                      "--out", str(tmp_path / f"{name}.parquet")],
                     hub.partner_env(creds, network_key))
        assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    env = _analyst_env(hub, bank_a)

    code, out, err = _query(env, "policies")
    assert code == 0, err
    assert "analysts-corridors" in out and "linked_units" in out

    code, out, err = _query(env, "estimate", *QUESTION)
    assert code == 0, err
    assert "nothing spent" in out and "discrete_gaussian" in out and "rho 0.2" in out
    code, out, err = _query(env, "budget", "--json")
    assert code == 0, err
    assert {b["dataset"]: b["member"]["spent"] for b in json.loads(out)}["bank_alerts"] == "0"

    csv_out, parquet_out = tmp_path / "release.csv", tmp_path / "release.parquet"
    code, out, err = _query(env, "run", *QUESTION, "--sort", "linked_units", "--limit", "3",
                            "--csv", str(csv_out), "--parquet", str(parquet_out))
    assert code == 0, err
    assert "│ GB" in _first_row(out)  # the largest overlap is the planted corridor
    assert "Charged: rho 0.2" in out and "budget left: yours rho 0.8" in out
    assert "95% +/-" in out
    # a top list leaves out the corridors whose interval holds zero (almost all of them)
    assert "not distinguishable from zero by linked_units are left out" in out
    saved = pq.read_table(parquet_out)
    assert saved.column_names == ["destination_country", "linked_units", "linked_units_low",
                                  "linked_units_high", "linked_units_distinguishable"]
    rows = {r["destination_country"]: r for r in saved.to_pylist()}
    assert abs(rows["GB"]["linked_units"] - SHARED) <= 30  # noise scale 5: 6 sigma
    assert rows["GB"]["linked_units_distinguishable"]
    told_apart = sum(r["linked_units_distinguishable"] for r in rows.values())
    assert len(_rows(out)) == min(3, told_apart)
    assert pacsv.read_csv(csv_out).num_rows == saved.num_rows == len(rows) > 200

    code, out, err = _query(env, "run", *QUESTION)
    assert code == 0, err
    assert "Asked before" in out and "nothing charged now" in out
    code, out, err = _query(env, "run", *QUESTION, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["reused"] and Fraction(again["charged"]["amount"]) == 0
    assert {r["destination_country"]: r["linked_units"]["value"] for r in again["rows"]} == {
        k: v["linked_units"] for k, v in rows.items()}

    code, out, err = _query(env, "history", "--json")
    assert code == 0, err
    (entry,) = json.loads(out)
    assert entry["id"] == again["query_id"] and entry["status"] == "released"
    code, out, err = _query(env, "show", entry["id"], "--json")
    assert code == 0 and json.loads(out)["rows"] == again["rows"], err
    code, out, err = _query(env, "budget", "bank_alerts", "--json")
    assert code == 0, err
    (balance,) = json.loads(out)
    assert balance["member"] == {"spent": "1/5", "left": "4/5"}

    # Refusals: the rule that refused, requested against remaining; nothing spent.
    code, _, err = _query(env, "run", "bank_alerts", "--measure", "count", "--cost", "0.3")
    assert code == 1 and "rule: budget:per_query" in err and "requested: 3/10" in err
    assert "Traceback" not in err
    code, _, err = _query(env, "run", "bank_alerts", "--measure", "sum:subject", "--cost", "1/10")
    assert code == 1 and "analysts-corridors:measures" in err
    code, _, err = _query(env, "estimate", "bank_alerts", "--by", "origin_country", "--by",
                          "destination_country", "--by", "period", "--cost", "1/10")
    assert code == 1 and "analysts-corridors:max_dimensions" in err
    code, out, err = _query(env, "budget", "bank_alerts", "--json")
    assert json.loads(out)[0]["member"]["spent"] == "1/5"

    code, _, err = _query(_analyst_env(hub, bank_b), "history")
    assert code == 1 and "role:analyst" in err
    code, _, err = _query(hub.env, "budget")
    assert code == 1 and "TAHUB_CLIENT_ID" in err and "--client-id" in err


# -- the demo's planted patterns, with keys selection, ranked and route queries ----------------
@pytest.fixture(scope="module", params=MODES)
def demo(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[tuple[Hub, Path]]:
    """`tahub demo --no-serve` (five members, the shipped policies), then `tahub serve`."""
    with deployed(request.param, request) as deployment:
        folder = tmp_path_factory.mktemp("analyst-demo")
        port = free_port()
        env = clean_env()
        env.update(TAHUB_DATA_DIR=str(folder / "tahub-data"), TAHUB_PORT=str(port),
                   TAHUB_LOG_JSON="true", COLUMNS="250", **deployment.env)
        out = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=folder, timeout=300)
        assert out.returncode == 0, out.stderr + out.stdout
        hub = Hub(folder / "tahub-data", port, env, folder / "hub.log", deployment)
        hub.start()
        try:
            yield hub, folder / "tahub-demo-partners"
        finally:
            hub.stop()


def _demo_analyst(demo: tuple[Hub, Path], slug: str) -> dict[str, str]:
    hub, partners = demo
    lines = (partners / slug / "analyst.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.startswith("TAHUB_"))
    return {**hub.env, **{k: v.strip() for k, v in pairs}}


def _rows(stdout: str) -> list[list[str]]:
    """The cells of the first table printed."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines[start:end]]


def _flat(stdout: str) -> str:
    return " ".join(stdout.split())


ROUTE = ["case_records", "--route", "--measure", "count_units", "--measure", "linked_units",
         "--top", "5", "--cost", "1/5"]


def test_a_ranked_route_query_finds_the_route_no_single_member_sees(
    demo: tuple[Hub, Path], tmp_path: Path
) -> None:
    env = _demo_analyst(demo, "safepassage")  # the NGO: it knows origins, not destinations
    code, out, err = _query(env, "estimate", *ROUTE)
    assert code == 0, err
    flat = _flat(out)
    assert "nothing spent" in flat and "keys: chosen by a DP threshold on distinct units" in flat
    assert "ranking: top 5 by count_units: two keys" in flat
    assert "cost: rho 0.2, delta 0.0000001" in flat

    parquet = tmp_path / "routes.parquet"
    code, out, err = _query(env, "run", *ROUTE, "--parquet", str(parquet))
    assert code == 0, err
    rank, source, transit, destination, units, linked = _rows(out)[0]
    assert (source, transit, destination) == ("NG", "LY", "IT")
    assert rank.split()[0] == "1" and not units.startswith("~") and not linked.startswith("~")
    flat = _flat(out)
    assert "the top 5 of source_country -> transit_country -> destination_country" in flat
    assert "chosen by a DP threshold" in flat and "absence says nothing more" in flat
    assert "route: each unit's stages are taken from all its kept rows" in flat
    assert "bounding: each privacy unit counts with at most 4 rows in total" in flat
    assert "Charged: rho 0.2, delta 0.0000001" in flat

    saved = pq.read_table(parquet)
    stages = ["source_country", "transit_country", "destination_country"]
    assert saved.column_names == [*stages, "rank", "rank_low", "rank_high", *(
        f"{m}{s}" for m in ("count_units", "linked_units")
        for s in ("", "_low", "_high", "_distinguishable"))]
    first = saved.to_pylist()[0]
    assert [first[s] for s in stages] == ["NG", "LY", "IT"]
    assert first["rank"] == 1 and first["rank_low"] == 1
    # 60 people known to both the NGO and the police; noise scale 6.3: 6 sigma
    assert abs(first["linked_units"] - 60) <= 38 and first["linked_units_distinguishable"]
    assert first["count_units"] >= first["linked_units"] - 38

    code, out, err = _query(env, "run", *ROUTE, "--json")  # asked before: free
    assert code == 0, err
    again = json.loads(out)
    assert again["reused"] and again["route"]["stages"] == stages
    assert again["top"]["by"] == "count_units" and again["rows"][0]["rank"]["position"] == 1


CORRIDORS = ["bank_alerts", "--by", "origin_country", "--by", "destination_country",
             "--measure", "linked_units", "--cost", "1/5"]


def test_top_lists_show_findings_not_noise(demo: tuple[Hub, Path], tmp_path: Path) -> None:
    env = _demo_analyst(demo, "northbank")
    code, out, err = _query(env, "run", *CORRIDORS, "--sort", "linked_units", "--limit", "5")
    assert code == 0, err
    rows = _rows(out)
    # the persons flagged at two or more of two banks and a money-transfer firm, one person
    # by their phone or e-mail (another IBAN at each bank), then the accounts both banks flagged
    assert rows[0][:2] == ["IT", "GB"] and ["RO", "GB"] in [row[:2] for row in rows]
    assert all(not cell.startswith("~") for row in rows for cell in row)
    flat = _flat(out)
    assert "listed of 62,001, chosen by a DP threshold on distinct units" in flat
    assert "cells not distinguishable from zero by linked_units are left out" in flat

    csv_out = tmp_path / "corridors.csv"
    code, out, err = _query(env, "run", *CORRIDORS, "--json")
    assert code == 0, err
    release = json.loads(out)
    assert release["reused"] and release["keys"]["mode"] == "selected"
    assert release["keys"]["listed"] == len(release["rows"]) < 62001
    cells = [r["linked_units"] for r in release["rows"]]
    assert all(c["distinguishable"] == (c["low"] > 0) for c in cells)
    code, out, err = _query(env, "run", *CORRIDORS, "--include-uncertain", "--sort",
                            "linked_units", "--limit", "0", "--csv", str(csv_out))
    assert code == 0, err
    shown = _rows(out)
    assert len(shown) == len(cells) and any(row[2].startswith("~") for row in shown)
    lows = [int(row[2].split("[")[1].split(",")[0]) for row in shown]
    assert lows == sorted(lows, reverse=True)  # by the lower bound, never the noisy value
    saved = pacsv.read_csv(csv_out)
    assert saved.column("linked_units_distinguishable").to_pylist() == [
        c["distinguishable"] for c in cells]

    # a ranked query: printed in the mechanism's order with each rank's interval
    code, out, err = _query(env, "run", "bank_alerts", "--by", "indicator", "--measure",
                            "count", "--top", "5", "--cost", "1/10")
    assert code == 0, err
    ranks = [row[0].split()[0] for row in _rows(out)]
    assert ranks == ["1", "2", "3", "4", "5"]
    assert "two keys" in _flat(out) and "put in the right order with probability 90%" in out
    code, out, err = _query(env, "estimate", "bank_alerts", "--by", "destination_country",
                            "--measure", "count", "--target", "40")
    assert code == 0, err
    assert "keys: every key of the grid, zeros included (249)" in out
    code, out, err = _query(env, "budget", "bank_alerts", "--json")
    assert json.loads(out)[0]["member"]["spent"] == "3/10"


ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_analyst_walkthrough_runs_on_the_demo(demo: tuple[Hub, Path]) -> None:
    """The README's analyst shell block, then its Python example, as written."""
    hub, partners = demo
    section = (ROOT / "README.md").read_text().split("## Walkthrough: analyst", 1)[1]
    section = section.split("\n## ", 1)[0]
    (shell,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    (python,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    script = "set -e\n" + shell.replace(".venv/bin/", f"{BIN}/")
    out = subprocess.run(["bash", "-c", script], cwd=partners.parent, env=hub.env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    corridors = out.stdout.split("the top 5 of indicator")[0]
    assert _rows(corridors.split("linked_units by origin_country", 1)[1])[0][:2] == ["IT", "GB"]
    assert [row[0].split()[0] for row in _rows(out.stdout.split("the top 5 of indicator")[1])
            ] == ["1", "2", "3", "4", "5"]
    ran = subprocess.run([str(BIN / "python"), "-c", python], cwd=partners.parent,
                         env=_demo_analyst(demo, "northbank"), capture_output=True, text=True,
                         timeout=300, check=False)
    assert ran.returncode == 0, ran.stderr
    first, absent = ran.stdout.splitlines()[:2]
    assert first.split()[0] == "1" and " NG -> LY -> IT " in first and "~" not in first
    assert "absence says nothing more" in absent
