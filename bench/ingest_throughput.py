"""Connector ingest throughput on a messy 1,000,000-row CSV, against pyarrow's own CSV -> Parquet.

Run:  .venv/bin/python bench/ingest_throughput.py [--rows 1000000] [--repeat 3] [--before DIR]

One generator writes the same bank alerts twice:

* **messy** (what the connector reads), as a continental bank exports them: ``;``-separated,
  day-first dates with dots (``15.03.2024``), amounts with decimal commas and thousands
  separators (``1.234,56``, and a no-break space in some rows: ``1 234,56``), "n/a" for an
  unknown stream, a free-text notes column, and 0.1% ragged lines (a ``;`` typed inside a
  note, unquoted, so that the line has one field too many);
* **clean** (what the baseline reads): the same rows, comma-separated, ISO dates, plain
  decimals, no ragged lines.

Both sides write zstd Parquet, in the same process and the same run (these machines are
noisy: only the ratio is meaningful across runs):

* **baseline**: ``pyarrow.csv.read_csv`` of the clean file +
  ``pyarrow.parquet.write_table(compression="zstd")``, no checks at all;
* **connector**: ``connectors.prepare_extract`` on the messy file - tolerant CSV reading
  (ragged lines rejected with their line), the typed mapping (day-first dates, decimal
  commas, thousands separators, unknown markers), every row validated against the contract
  (types, domains, ranges, NaN/inf), IBANs normalised and checksum-verified, HMAC-SHA256
  pseudonymisation, magnitude check, deterministic zstd Parquet and its sha256, the rejects
  file.

Each run is a child process of its own, which reports its time and its peak RSS
(``VmHWM``), so the memory of each side is measured alone. The connector runs with its
default limits (``TAHUB_CONNECT_*``, docs/connector.md: a 512 MB DuckDB memory limit).
The median of ``--repeat`` runs of each is reported and appended to ``bench/RESULTS.md``.
The CSV holds 200,000 distinct IBANs (5 alerts per subject on average), written in mixed
spellings (spaced/compact, upper/lower case) as real exports are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from stdnum import iban as stdiban

from connectors import NetworkKey, parse_mapping, prepare_extract
from connectors.partner.limits import ConnectorLimits
from hub.contracts.model import ContractRegistry

MAPPING = """\
dataset: bank_alerts
contract_version: 1
source: {delimiter: ";"}
fields:
  subject: customer_iban
  indicator: indicator
  typology: typology
  exploitation_stream: {column: stream, unknown: [n/a]}
  origin_country: from_country
  destination_country: to_country
  amount: {column: amount_eur, unit: EUR, decimal: ",", thousands: [".", space]}
  period: {column: alert_date, formats: ["%d.%m.%Y"]}
ignore:
  alert_ref: the bank's own reference
  notes: free text, never shared
"""
RAGGED_SHARE = 0.001
NBSP = "\u00a0"


def _amount(value: float, rng: random.Random) -> str:
    whole, cents = divmod(round(value * 100), 100)
    sep = NBSP if rng.random() < 0.3 else "."
    grouped = f"{whole:,}".replace(",", sep)
    return f"{grouped},{cents:02d}"


def write_csvs(messy: Path, clean: Path, rows: int, seed: int = 7) -> int:
    """Write the messy and the clean file (same rows); return how many lines are ragged."""
    rng = random.Random(seed)  # noqa: S311 - benchmark input, not a security use
    contract = ContractRegistry.load().get("bank_alerts")
    indicators = list(contract.field("indicator").codes)
    typologies = list(contract.field("typology").codes)
    countries = ["RO", "BG", "NG", "VN", "AL", "GB", "IT", "DE", "FR", "ES", "NL", "US"]
    subjects = []
    for _ in range(max(1, rows // 5)):
        bban = "".join(rng.choices(string.ascii_uppercase, k=4)) + "".join(
            rng.choices(string.digits, k=14)
        )
        subjects.append("GB" + stdiban.calc_check_digits("GB00" + bban) + bban)
    spell = [lambda s: s, str.lower, lambda s: " ".join(s[i : i + 4] for i in range(0, 22, 4))]
    streams = ["sexual_exploitation", "forced_labour", ""]
    notes = ["cash deposits in several branches", "wages of several workers", "rent for others"]
    header = ["alert_ref", "alert_date", "customer_iban", "indicator", "typology", "stream",
              "from_country", "to_country", "amount_eur", "notes"]  # fmt: skip
    ragged = 0
    with messy.open("w", encoding="utf-8", newline="") as m, clean.open(
        "w", encoding="utf-8", newline=""
    ) as c:
        m.write(";".join(header) + "\n")
        c.write(",".join(header) + "\n")
        for i in range(rows):
            day = dt.date(2023 + rng.randint(0, 2), rng.randint(1, 12), rng.randint(1, 28))
            amount = rng.lognormvariate(6, 1.3)
            stream = rng.choice(streams)
            note = rng.choice(notes)
            iban = rng.choice(spell)(rng.choice(subjects))
            common = [rng.choice(indicators), rng.choice(typologies)]
            route = [rng.choice(countries), rng.choice(countries)]
            bad = rng.random() < RAGGED_SHARE
            ragged += bad
            m.write(";".join([
                f"A{i:07d}", day.strftime("%d.%m.%Y"), iban, *common, stream or "n/a", *route,
                _amount(amount, rng), note.replace(" ", "; ", 1) if bad else note,
            ]) + "\n")  # fmt: skip
            c.write(",".join([
                f"A{i:07d}", day.isoformat(), iban, *common, stream, *route, f"{amount:.2f}",
                note,
            ]) + "\n")  # fmt: skip
    return ragged


def _baseline(csv: Path, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    pq.write_table(pacsv.read_csv(csv), out, compression="zstd")
    return {"seconds": time.perf_counter() - start}


def _connector(csv: Path, out: Path, rejects: Path) -> dict[str, float]:
    mapping = parse_mapping(MAPPING, source="bench mapping")
    key = NetworkKey(bytes(range(32)))
    start = time.perf_counter()
    prepared = prepare_extract(csv, mapping, key=key, out_path=out, rejects_path=rejects,
                               limits=ConnectorLimits.from_env())
    return {"seconds": time.perf_counter() - start, "valid": prepared.rows_valid,
            "rejected": prepared.rows_rejected}  # fmt: skip


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:")) / 1024


def _child(side: str, paths: list[str]) -> None:
    """One run in this (child) process; prints its result and peak RSS as JSON."""
    if side == "baseline":
        result = _baseline(Path(paths[0]), Path(paths[1]))
    else:
        result = _connector(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    print(json.dumps({**result, "peak_mb": _peak_mb()}))


def _run(side: str, *paths: Path, before: Path | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if before is not None:  # an earlier checkout's connectors package, first on the path
        env["PYTHONPATH"] = os.pathsep.join([str(before), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, *map(str, paths)],
        capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1], env=env,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument(
        "--before", type=Path, default=None,
        help="a folder holding an earlier `connectors` package (e.g. `git archive HEAD "
        "connectors | tar -x -C DIR`): its prepare is timed too, in the same run",
    )  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1:])
        return
    load_start = os.getloadavg()[0]
    old: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="tahub-bench-") as tmp:
        folder = Path(tmp)
        messy, clean = folder / "alerts_messy.csv", folder / "alerts_clean.csv"
        ragged = write_csvs(messy, clean, args.rows)
        size_mb = messy.stat().st_size / 1e6
        base, conn = [], []
        for i in range(args.repeat):  # interleaved, so drift on the machine hits both alike
            base.append(_run("baseline", clean, folder / f"base{i}.parquet"))
            conn.append(_run("connector", messy, folder / f"ext{i}.parquet",
                             folder / "rejects.csv"))  # fmt: skip
            if args.before is not None:
                old.append(_run("connector", messy, folder / f"old{i}.parquet",
                                folder / "rejects.csv", before=args.before))  # fmt: skip
                (folder / f"old{i}.parquet").unlink(missing_ok=True)
            (folder / f"base{i}.parquet").unlink()
            (folder / f"ext{i}.parquet").unlink()
    valid, rejected = int(conn[-1]["valid"]), int(conn[-1]["rejected"])
    b = statistics.median(r["seconds"] for r in base)
    c = statistics.median(r["seconds"] for r in conn)
    bm = max(r["peak_mb"] for r in base)
    cm = max(r["peak_mb"] for r in conn)
    load = os.getloadavg()[0]
    earlier = []
    if old:
        o, om = statistics.median(r["seconds"] for r in old), max(r["peak_mb"] for r in old)
        earlier = [
            f"| the same, connector of {args.before} (before this change), same run | "
            f"{o:.2f} | {args.rows / o:,.0f} | {om:,.0f} |",
        ]
    lines = [
        f"## ingest_throughput, {dt.date.today().isoformat()} (messy CSV: ragged lines, "
        "day-first dates, decimal commas)",
        "",
        f"{args.rows:,} rows ({size_mb:.0f} MB `;` CSV, {ragged:,} ragged lines; {valid:,} "
        f"valid, {rejected:,} rejected with their line), median of {args.repeat}; "
        f"{os.cpu_count()} cores shared with other work (load average {load_start:.1f} at "
        f"the start, {load:.1f} at the end), Python {platform.python_version()}; each run "
        "a child process",
        "",
        "| step | seconds | rows/s | peak RSS (MB) |",
        "|---|---|---|---|",
        f"| pyarrow CSV -> zstd Parquet of the clean file (baseline, no checks) | {b:.2f} | "
        f"{args.rows / b:,.0f} | {bm:,.0f} |",
        f"| tahub-connect prepare of the messy file (read, parse, validate, pseudonymise, "
        f"write; default limits) | {c:.2f} | {args.rows / c:,.0f} | {cm:,.0f} |",
        *earlier,
        "",
        f"Connector / baseline time ratio: **{c / b:.2f}x**; peak RSS ratio {cm / bm:.2f}x"
        + (f"; before this change: {o / b:.2f}x" if old else ""),
        "",
    ]
    print("\n".join(lines))
    with args.results.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
