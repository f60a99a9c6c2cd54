"""An analyst's journey, end to end: a real hub process, two banks pushing through the real
connector CLI, and `tahub query` finding the customers both banks flagged on RO -> GB."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from stdnum import iban as stdiban

from tests.e2e.conftest import BIN, Hub, run
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
    assert "nothing spent" in out and "discrete_gaussian" in out and "rho = 1/5" in out
    code, out, err = _query(env, "budget", "--json")
    assert code == 0, err
    assert {b["dataset"]: b["member"]["spent"] for b in json.loads(out)}["bank_alerts"] == "0"

    csv_out, parquet_out = tmp_path / "release.csv", tmp_path / "release.parquet"
    code, out, err = _query(env, "run", *QUESTION, "--sort", "linked_units", "--limit", "3",
                            "--csv", str(csv_out), "--parquet", str(parquet_out))
    assert code == 0, err
    assert "│ GB" in _first_row(out)  # the largest overlap is the planted corridor
    assert "Charged: rho = 1/5" in out and "budget left (zcdp): yours 4/5" in out
    assert "more cells" in out and "95% +/-" in out
    saved = pq.read_table(parquet_out)
    assert saved.column_names == ["destination_country", "linked_units", "linked_units_low",
                                  "linked_units_high"]
    rows = {r["destination_country"]: r for r in saved.to_pylist()}
    assert abs(rows["GB"]["linked_units"] - SHARED) <= 30  # noise scale 5: 6 sigma
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
