"""A partner engineer's journey, end to end: real hub process, real CLIs, real files."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from stdnum import iban as stdiban

from tests.e2e.conftest import BIN, Hub, run

pytestmark = pytest.mark.e2e

MAPPING = """\
dataset: bank_alerts
contract_version: 1
fields:
  subject: customer_iban
  indicator:
    column: rule
    recode: {R01: cash_deposits_no_payroll, R02: rapid_movement_of_funds}
  typology: {constant: funnel_account}
  origin_country: from_country
  destination_country: to_country
  amount: {column: amount_eur, unit: EUR}
  period: alert_date
"""


def _iban(i: int) -> str:
    bban = f"NWBK{i:014d}"
    return "GB" + stdiban.calc_check_digits("GB00" + bban) + bban


def _export(folder: Path, rows: int, *, bad: int = 0) -> tuple[Path, Path]:
    """A bank's CSV export (with a name column that must never leave) and its mapping."""
    spaced = [" ".join(_iban(i % 5000)[j : j + 4] for j in range(0, 22, 4)) for i in range(rows)]
    table = pa.table({
        "customer_name": [f"Jane Doe {i}" for i in range(rows)],
        "customer_iban": spaced,
        "rule": ["R01" if i % 2 else "R02" for i in range(rows)],
        "from_country": ["RO"] * rows,
        "to_country": ["GB" if i >= bad else "XX" for i in range(rows)],
        "amount_eur": [f"{100 + i % 900}.50" for i in range(rows)],
        "alert_date": ["2025-03-14"] * rows,
    })
    csv, mapping = folder / "alerts.csv", folder / "alerts.mapping.yaml"
    pacsv.write_csv(table, csv)
    mapping.write_text(MAPPING)
    return csv, mapping


def _push(env: dict[str, str], csv: Path, mapping: Path, out: Path,
          *extra: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "tahub-connect"), "push", str(csv), "--mapping", str(mapping),
                "--out", str(out), *extra], env)


def test_push_list_duplicate_and_withdraw(hub: Hub, network_key: Path, tmp_path: Path) -> None:
    a = hub.partner_env(hub.add_member("Bank A"), network_key)
    b = hub.partner_env(hub.add_member("Bank B"), network_key)
    csv, mapping = _export(tmp_path, 2000, bad=3)

    pushed = _push(a, csv, mapping, tmp_path / "a.parquet")
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    assert "rows read" in pushed.stdout and "2,000" in pushed.stdout
    assert "customer_name" in pushed.stdout  # reported as dropped, with its hint
    ext_id = re.search(r"Uploaded extract (ext_\w+) \(1,997 rows", pushed.stdout)
    assert ext_id, pushed.stdout
    rejects = (tmp_path / "a.rejects.csv").read_text().splitlines()
    assert rejects[0] == "row,line,field,reason,value"
    assert rejects[1:] == [f"{n},{n + 1},destination_country,not in the contract's domain,XX"
                           for n in (1, 2, 3)]

    # The hub stored exactly one object, and no raw identifier or name anywhere.
    (stored,) = hub.objects()
    kept = [p for p in hub.data_dir.rglob("*") if p.is_file()] + hub.objects(prefix="")
    raw = b"".join(p.read_bytes() for p in kept)
    assert b"NWBK" not in raw and b"Jane Doe" not in raw
    subjects = duckdb.sql(f"SELECT DISTINCT subject FROM '{stored}'").fetchall()
    assert len(subjects) == 1997  # one token per distinct IBAN of the valid rows
    assert all(re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{64}", s) for (s,) in subjects)

    # Same content again: idempotent, stored once.
    again = _push(a, csv, mapping, tmp_path / "a2.parquet")
    assert again.returncode == 0, again.stderr
    assert "already has this extract" in again.stdout
    assert hub.objects() == [stored]

    listed = run([str(BIN / "tahub-connect"), "list"], a)
    assert listed.returncode == 0 and ext_id[1] in listed.stdout
    # Partner B sees nothing of A's and cannot withdraw it: 404, existence hidden.
    assert ext_id[1] not in run([str(BIN / "tahub-connect"), "list"], b).stdout
    stolen = run([str(BIN / "tahub-connect"), "withdraw", ext_id[1]], b)
    assert stolen.returncode == 1 and "404 not_found" in stolen.stderr
    assert hub.objects() == [stored]

    withdrawn = run([str(BIN / "tahub-connect"), "withdraw", ext_id[1]], a)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert hub.objects() == []  # the data is gone, not only hidden
    assert ext_id[1] not in run([str(BIN / "tahub-connect"), "list"], a).stdout


def test_dry_run_needs_no_hub_and_uploads_nothing(hub: Hub, network_key: Path,
                                                   tmp_path: Path) -> None:
    csv, mapping = _export(tmp_path, 50)
    env = {**hub.env, "TAHUB_NETWORK_KEY_FILE": str(network_key)}
    out = _push(env, csv, mapping, tmp_path / "dry.parquet", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "nothing was uploaded" in out.stdout.lower()
    assert (tmp_path / "dry.parquet").stat().st_size > 0
    assert hub.objects() == []


def test_bad_credentials_and_wrong_mapping_fail_cleanly(hub: Hub, network_key: Path,
                                                        tmp_path: Path) -> None:
    creds = hub.add_member("Bank C")
    csv, mapping = _export(tmp_path, 10)
    env = hub.partner_env({**creds, "client_secret": "wrong"}, network_key)
    denied = _push(env, csv, mapping, tmp_path / "x.parquet")
    assert denied.returncode == 1
    assert "Traceback" not in denied.stderr
    bad_mapping = tmp_path / "bad.yaml"
    bad_mapping.write_text(MAPPING.replace("subject: customer_iban", "suspect: customer_iban"))
    wrong = _push(hub.partner_env(creds, network_key), csv, bad_mapping, tmp_path / "y.parquet")
    assert wrong.returncode == 2
    assert "line" in wrong.stderr and "suspect" in wrong.stderr
    assert hub.objects() == []


def _wait_for_partial_upload(hub: Hub, timeout: float = 60) -> int:
    """Bytes the hub holds once an upload has started (staging file or multipart parts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = hub.received_bytes()
        if received > 0:
            return received
        time.sleep(0.01)
    raise AssertionError("the upload never started")


def _big_export(tmp_path: Path) -> tuple[Path, Path]:
    # 150,000 distinct IBANs: tokens do not compress, so the extract is several MB and the
    # upload takes many 64 KiB chunks.
    rows = 150_000
    table = pa.table({
        "customer_iban": [_iban(i) for i in range(rows)],
        "rule": ["R01"] * rows, "from_country": ["RO"] * rows, "to_country": ["GB"] * rows,
        "amount_eur": ["10.00"] * rows, "alert_date": ["2025-03"] * rows,
    })
    csv, mapping = tmp_path / "big.csv", tmp_path / "big.mapping.yaml"
    pacsv.write_csv(table, csv)
    mapping.write_text(MAPPING)
    return csv, mapping


def test_hub_killed_mid_upload_leaves_nothing_visible_and_the_push_resumes(
    hub: Hub, network_key: Path, tmp_path: Path
) -> None:
    env = hub.partner_env(hub.add_member("Bank D"), network_key)
    csv, mapping = _big_export(tmp_path)
    first = subprocess_push(env, csv, mapping, tmp_path / "big.parquet")
    _wait_for_partial_upload(hub)
    hub.kill()
    first.kill()
    first.communicate(timeout=10)  # reap it and close its pipes
    received = hub.received_bytes()
    size = (tmp_path / "big.parquet").stat().st_size
    # Direct uploads go to the store, not through the killed hub: all parts may be there.
    assert 0 < received < size or (hub.deployment.mode == "production" and received == size)

    hub.start()
    listed = run([str(BIN / "tahub-connect"), "list"], env)
    assert listed.returncode == 0 and "ext_" not in listed.stdout  # nothing partial visible
    assert hub.objects() == []

    again = _push(env, csv, mapping, tmp_path / "big.parquet")
    assert again.returncode == 0, again.stderr + again.stdout
    assert "Uploaded extract" in again.stdout and "150,000 rows" in again.stdout
    assert re.search(r"resumed at byte (\d[\d,]*)", again.stdout), again.stdout
    (stored,) = hub.objects()  # the hub's checked copy holds exactly the uploaded rows
    # + the columns numbered at commit and the amount's fixed-point integers (hub.ingest.units),
    # in the order DuckDB stored them (hub.ingest.units: the rows' order is not kept)
    bounding = ["__unit", "__seq", "__partner", "__prio", "__fx_amount"]
    copy = pq.read_table(stored).drop_columns(bounding)
    uploaded = pq.read_table(tmp_path / "big.parquet")
    order = [(name, "ascending") for name in uploaded.column_names]
    assert copy.schema == uploaded.schema
    assert copy.sort_by(order).equals(uploaded.sort_by(order))


def test_connector_rides_out_a_hub_restart(hub: Hub, network_key: Path, tmp_path: Path) -> None:
    env = hub.partner_env(hub.add_member("Bank E"), network_key)
    csv, mapping = _big_export(tmp_path)
    push = subprocess_push(env, csv, mapping, tmp_path / "big.parquet")
    _wait_for_partial_upload(hub)
    hub.kill()
    hub.start()  # the connector retries with backoff meanwhile
    stdout, stderr = push.communicate(timeout=120)
    assert push.returncode == 0, stderr.decode() + stdout.decode()
    assert b"Uploaded extract" in stdout
    assert len(hub.objects()) == 1


def subprocess_push(env: dict[str, str], csv: Path, mapping: Path,
                    out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "tahub-connect"), "push", str(csv), "--mapping", str(mapping),
         "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


MESSY_MAPPING = """\
dataset: bank_alerts
contract_version: 1
source: {{delimiter: ";"}}
fields:
  subject: konto
  indicator: {{column: regel, recode: {{R01: cash_deposits_no_payroll, R02: other}}}}
  typology: {{constant: funnel_account}}
  origin_country: von
  destination_country: nach
  amount: {{column: betrag_cent, unit: EUR, decimal: ",", thousands: ["."]{cents}}}
  period: {{column: datum, formats: ["%d.%m.%Y"]}}
ignore:
  kunde: a name, never shared
"""


def test_a_messy_export_is_checked_stopped_and_then_pushed(
    hub: Hub, network_key: Path, tmp_path: Path
) -> None:
    """A continental bank's export: ';', day-first dates, cents, one ragged line."""
    env = hub.partner_env(hub.add_member("Bank F"), network_key)
    lines = ["konto;regel;von;nach;betrag_cent;datum;kunde"]
    for i in range(300):
        cents = f"{(12_345 + 997 * i) * 10:,}".replace(",", ".")  # "123.450": 1,234.50 EUR
        lines.append(f"{_iban(i)};R0{1 + i % 2};RO;GB;{cents};{1 + i % 28:02d}.03.2025;Jane {i}")
    lines[150] += ";Bucharest; Cluj"  # an unquoted ';' in the name: a ragged line
    csv = tmp_path / "export.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    naive, right = tmp_path / "naive.yaml", tmp_path / "right.yaml"
    naive.write_text(MESSY_MAPPING.format(cents=""))
    right.write_text(MESSY_MAPPING.format(cents=", minor_units: true"))

    checked = run([str(BIN / "tahub-connect"), "check", str(csv), "--mapping", str(naive)],
                  {**env, "COLUMNS": "200"})
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "are they in cents? add `minor_units: true`" in " ".join(checked.stdout.split())
    stopped = _push(env, csv, naive, tmp_path / "naive.parquet")
    assert stopped.returncode == 1
    assert "implausible magnitudes" in stopped.stderr
    assert hub.objects() == [] and not (tmp_path / "naive.parquet").exists()

    pushed = _push(env, csv, right, tmp_path / "right.parquet")
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    assert re.search(r"Uploaded extract ext_\w+ \(299 rows", pushed.stdout), pushed.stdout
    rejects = (tmp_path / "right.rejects.csv").read_text()
    assert rejects.splitlines()[1] == "150,151,,the line has 8 fields where the header has 7,"
    assert "NWBK" not in rejects and "Jane" not in rejects
    (stored,) = hub.objects()
    ((low, high),) = duckdb.sql(f"SELECT min(amount), max(amount) FROM '{stored}'").fetchall()
    assert (low, high) == pytest.approx((1234.5, 31044.8))
