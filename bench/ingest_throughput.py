"""Connector ingest throughput on a 1,000,000-row CSV, against pyarrow's own CSV -> Parquet.

Run:  .venv/bin/python bench/ingest_throughput.py [--rows 1000000] [--repeat 3]

Both sides read the same bank-alerts CSV and write zstd Parquet, in the same process and the
same run (these machines are noisy: only the ratio is meaningful across runs):

* **baseline**: ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table(compression="zstd")``,
  no checks at all;
* **connector**: ``connectors.prepare_extract`` - mapping, every row validated against the
  contract (types, domains, ranges, NaN/inf), IBANs normalised and checksum-verified,
  HMAC-SHA256 pseudonymisation, deterministic zstd Parquet and its sha256.

The median of ``--repeat`` runs of each is reported and appended to ``bench/RESULTS.md``.
The CSV holds 200,000 distinct IBANs (5 alerts per subject on average), written in mixed
spellings (spaced/compact, upper/lower case) as real exports are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import string
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from stdnum import iban as stdiban

from connectors import NetworkKey, parse_mapping, prepare_extract
from hub.contracts.model import ContractRegistry

MAPPING = """\
dataset: bank_alerts
contract_version: 1
fields:
  subject: customer_iban
  indicator: indicator
  typology: typology
  exploitation_stream: stream
  origin_country: from_country
  destination_country: to_country
  amount: amount_eur
  period: alert_date
"""


def _write_csv(path: Path, rows: int, seed: int = 7) -> None:
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
        iban = "GB" + stdiban.calc_check_digits("GB00" + bban) + bban
        subjects.append(iban)
    spell = [lambda s: s, str.lower, lambda s: " ".join(s[i : i + 4] for i in range(0, 22, 4))]
    chunk = 100_000
    with pacsv.CSVWriter(path, pa.schema([(n, pa.string()) for n in (
        "customer_iban", "indicator", "typology", "stream", "from_country", "to_country",
        "amount_eur", "alert_date")])) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = {
                "customer_iban": [rng.choice(spell)(rng.choice(subjects)) for _ in range(n)],
                "indicator": rng.choices(indicators, k=n),
                "typology": rng.choices(typologies, k=n),
                "stream": rng.choices(["sexual_exploitation", "forced_labour", ""], k=n),
                "from_country": rng.choices(countries, k=n),
                "to_country": rng.choices(countries, k=n),
                "amount_eur": [f"{rng.lognormvariate(6, 1.3):.2f}" for _ in range(n)],
                "alert_date": [f"202{rng.randint(3, 5)}-{rng.randint(1, 12):02d}-"
                               f"{rng.randint(1, 28):02d}" for _ in range(n)],
            }
            writer.write_table(pa.table(cols))


def _baseline(csv: Path, out: Path) -> float:
    start = time.perf_counter()
    pq.write_table(pacsv.read_csv(csv), out, compression="zstd")
    return time.perf_counter() - start


def _connector(csv: Path, out: Path, rejects: Path) -> tuple[float, int]:
    mapping = parse_mapping(MAPPING, source="bench mapping")
    key = NetworkKey(bytes(range(32)))
    start = time.perf_counter()
    prepared = prepare_extract(csv, mapping, key=key, out_path=out, rejects_path=rejects)
    return time.perf_counter() - start, prepared.rows_valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tahub-bench-") as tmp:
        folder = Path(tmp)
        csv = folder / "alerts.csv"
        _write_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        base, conn, valid = [], [], 0
        for i in range(args.repeat):  # interleaved, so drift on the machine hits both alike
            base.append(_baseline(csv, folder / f"base{i}.parquet"))
            seconds, valid = _connector(csv, folder / f"ext{i}.parquet", folder / "rejects.csv")
            conn.append(seconds)
    b, c = statistics.median(base), statistics.median(conn)
    lines = [
        f"## ingest_throughput, {dt.date.today().isoformat()}",
        "",
        f"{args.rows:,} rows ({size_mb:.0f} MB CSV, {valid:,} valid), median of "
        f"{args.repeat}; {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        "| step | seconds | rows/s |",
        "|---|---|---|",
        f"| pyarrow CSV -> zstd Parquet (baseline, no checks) | {b:.2f} | {args.rows / b:,.0f} |",
        f"| tahub-connect prepare (validate, pseudonymise, write) | {c:.2f} | "
        f"{args.rows / c:,.0f} |",
        "",
        f"Connector / baseline time ratio: **{c / b:.2f}x**",
        "",
    ]
    print("\n".join(lines))
    with args.results.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
