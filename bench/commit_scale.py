"""Commit at scale on one node: seconds per million rows and peak memory, against pyarrow.

Run:  .venv/bin/python bench/commit_scale.py [--rows 10000000] [--no-record]

``--rows`` bank_alerts rows from five partners, one extract each, of uneven sizes (14%,
26%, 20%, 20%, 20% of the rows, as in issue 16: the second partner's extract is joined
against a unit index that the first already filled), over a pool of ``--rows / 4`` skewed
privacy units shared by the partners, tokens as the connector writes them (73 characters).
The extracts are written by DuckDB straight to zstd Parquet, a row group at a time.

* **commit**: a child process with the hub's **default settings** (only the data folder
  and the extract size limits are set: ``TAHUB_DUCKDB_*`` all default, derived from the
  machine) sends each extract through :class:`~hub.ingest.service.IngestService` (a chunked
  upload, then ``commit_upload``: sha256, re-validation of every row, numbering against the
  unit index, canonical copy, the object put, the extract visible). Timed: ``commit_upload``.
  Its peak RSS (``VmHWM``) after each commit is reported: the last one is the whole run's.
* **baseline**: right before each commit, another child reads the same rows from CSV with
  ``pyarrow.csv.read_csv`` and writes them with ``pyarrow.parquet.write_table(compression=
  "zstd")`` (no checks at all; as bench/ingest_throughput.py). The CSV files are written
  beforehand, untimed.

Baseline and commit of each extract run back to back, so that both meet about the same
load from the machine's other work; only the ratio compares across runs. The load average
is printed with it.
Appended to ``bench/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

SHARES = (0.14, 0.26, 0.20, 0.20, 0.20)
COUNTRIES = 60
_ROW_GROUP = 512 * 1024


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _write_extracts(folder: Path, rows: int) -> list[Path]:
    """The five partners' extracts (module docstring), written by DuckDB a batch at a time."""
    from hub.contracts.extractformat import extract_schema
    from hub.contracts.model import ContractRegistry

    contract = ContractRegistry.load().get("bank_alerts", 1)
    key_id = hmac.new(b"bench network key", b"tahub key id", hashlib.sha256).hexdigest()[:8]
    schema = extract_schema(contract, {
        "tahub.dataset": contract.dataset, "tahub.contract_version": str(contract.version),
        "tahub.key_id": key_id, "tahub.connector_version": "bench"})
    units = max(rows // 4, 1)
    countries = _sql_list(list(contract.field("origin_country").codes[:COUNTRIES]))
    indicators = _sql_list(list(contract.field("indicator").codes))
    typologies = _sql_list(list(contract.field("typology").codes))
    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    con.execute("SET enable_progress_bar = false")
    paths, start = [], 0
    for p, share in enumerate(SHARES):
        n = int(rows * share) if p < len(SHARES) - 1 else rows - start
        # r(k): a uniform draw in [0, 1) per row and purpose; units skewed towards low ids
        r = "((hash(i, {k}) % 1000003) / 1000003.0)"
        query = (
            f"SELECT '{key_id}.' || sha256(CAST(CAST(floor({units} * pow({r.format(k=1)}, 2)) "
            "AS BIGINT) AS VARCHAR)) AS subject, "
            f"{indicators}[1 + CAST(hash(i, 2) % {len(contract.field('indicator').codes)} "
            "AS BIGINT)] AS indicator, "
            f"{typologies}[1 + CAST(hash(i, 3) % {len(contract.field('typology').codes)} "
            "AS BIGINT)] AS typology, "
            "CAST(NULL AS VARCHAR) AS exploitation_stream, "
            f"{countries}[1 + CAST(floor({COUNTRIES} * pow({r.format(k=4)}, 3)) AS BIGINT)] "
            "AS origin_country, "
            f"{countries}[1 + CAST(floor({COUNTRIES} * pow({r.format(k=5)}, 3)) AS BIGINT)] "
            "AS destination_country, "
            f"round(exp(7 + 6 * ({r.format(k=6)} - 0.5)), 2) AS amount, "
            "'2025-' || lpad(CAST(1 + hash(i, 7) % 12 AS VARCHAR), 2, '0') AS period "
            f"FROM range({start}, {start + n}) t(i)"
        )
        path = folder / f"partner-{p}.parquet"
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            for batch in con.sql(query).to_arrow_reader(_ROW_GROUP):
                writer.write_batch(batch.cast(schema), row_group_size=_ROW_GROUP)
        paths.append(path)
        start += n
    con.close()
    return paths


def _write_csv(path: Path, csv: Path) -> None:
    parquet = pq.ParquetFile(path)
    with pacsv.CSVWriter(csv, parquet.schema_arrow) as writer:
        for batch in parquet.iter_batches(batch_size=_ROW_GROUP):
            writer.write_batch(batch)


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child_commit(folder: Path, paths: list[Path]) -> dict[str, Any]:
    """Commit every extract through IngestService with the default settings."""
    import sqlalchemy as sa

    from hub.actors import Actor, MemberKind, Role
    from hub.contracts.model import ContractRegistry
    from hub.ingest.service import IngestService, UploadRequest
    from hub.settings import Settings
    from hub.storage.db import make_engine, organisations, upgrade, utcnow
    from hub.storage.objects import open_store

    settings = Settings(data_dir=folder / "data", chunk_bytes=64 * 1024 * 1024,
                        max_extract_bytes=64 * 1024**3)
    settings.data_dir.mkdir()
    db = make_engine(settings.database_url)
    upgrade(db)
    orgs = [f"org_bench{p:07d}" for p in range(len(paths))]
    with db.begin() as conn:
        conn.execute(sa.insert(organisations), [
            {"id": o, "name": o, "kind": MemberKind.BANK, "created_at": utcnow()} for o in orgs])
    ingest = IngestService(engine=db, store=open_store(settings.storage, settings),
                           registry=ContractRegistry.load(), settings=settings)
    linked: list[float] = []
    link = ingest._link

    def timed_link(dataset: str) -> None:  # persons resolved after publication, timed apart
        start = time.perf_counter()
        link(dataset)
        linked.append(time.perf_counter() - start)

    ingest._link = timed_link  # type: ignore[method-assign]
    out: dict[str, Any] = {"memory_limit": settings.duckdb_memory_limit,
                           "threads": settings.duckdb_threads, "commits": []}
    for org, path in zip(orgs, paths, strict=True):
        actor = Actor(client_id="cli", org=org, org_name=org, roles=frozenset({Role.PARTNER}))
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                digest.update(chunk)
        size = path.stat().st_size
        up = ingest.start_upload(actor, UploadRequest(
            dataset="bank_alerts", contract_version=1, size=size, sha256=digest.hexdigest(),
            transfer="chunks")).upload
        assert up is not None  # noqa: S101 - a fresh hub
        with path.open("rb") as fh:
            offset = 0
            while chunk := fh.read(settings.chunk_bytes):
                ingest.append_chunk(actor, up.id, offset, chunk)
                offset += len(chunk)
        base = _child("baseline", folder, [path.with_suffix(".csv")])
        path.with_suffix(".csv").unlink()
        start = time.perf_counter()
        committed = ingest.commit_upload(actor, up.id)
        seconds = time.perf_counter() - start
        out["commits"].append({"rows": committed.extract.rows, "seconds": seconds,
                               "link_seconds": linked.pop(), "peak_rss_mib": _peak_rss_mib(),
                               "baseline_seconds": base["seconds"][0],
                               "baseline_rss_mib": base["peak_rss_mib"]})
        print(f"committed {org}: {committed.extract.rows:,} rows in {seconds:.1f} s, "
              f"peak RSS {_peak_rss_mib():.0f} MiB", file=sys.stderr, flush=True)
    db.dispose()
    return out


def _child_baseline(folder: Path, csvs: list[Path]) -> dict[str, Any]:
    times = []
    for i, csv in enumerate(csvs):
        start = time.perf_counter()
        pq.write_table(pacsv.read_csv(csv), folder / f"baseline-{i}.parquet",
                       compression="zstd")
        times.append(time.perf_counter() - start)
        (folder / f"baseline-{i}.parquet").unlink()
    return {"seconds": times, "peak_rss_mib": _peak_rss_mib()}


def _child(mode: str, folder: Path, paths: list[Path]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--folder", str(folder),
         *map(str, paths)],
        check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tmp", type=Path, default=None,
                        help="folder for the extracts, CSV files and hub data")
    parser.add_argument("--memory-limit", default=None,
                        help="TAHUB_DUCKDB_MEMORY_LIMIT for the commits (default: the hub's)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--child", choices=["commit", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = _child_commit if args.child == "commit" else _child_baseline
        print(json.dumps(fn(args.folder, args.paths)))
        return

    with tempfile.TemporaryDirectory(prefix="tahub-commit-scale-", dir=args.tmp) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths = _write_extracts(root, args.rows)
        csvs = [p.with_suffix(".csv") for p in paths]
        for path, csv in zip(paths, csvs, strict=True):
            _write_csv(path, csv)
        print(f"generated {args.rows:,} rows (Parquet and CSV) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        load_before = os.getloadavg()
        if args.memory_limit:
            os.environ["TAHUB_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
        commit = _child("commit", root, paths)
        load_after = os.getloadavg()

    rows = [c["rows"] for c in commit["commits"]]
    total = sum(rows)
    commit_s = sum(c["seconds"] for c in commit["commits"])
    link_s = sum(c["link_seconds"] for c in commit["commits"])
    base_s = sum(c["baseline_seconds"] for c in commit["commits"])
    peak = commit["commits"][-1]["peak_rss_mib"]
    base_rss = max(c["baseline_rss_mib"] for c in commit["commits"])
    per_m = 1e6 / total
    lines = [
        f"{total:,} rows from {len(rows)} partners ({', '.join(f'{r:,}' for r in rows)}) over "
        f"~{args.rows // 4:,} skewed units; "
        f"{'default settings' if not args.memory_limit else 'default settings but'}: "
        "TAHUB_DUCKDB_MEMORY_LIMIT "
        f"{commit['memory_limit']}, TAHUB_DUCKDB_THREADS {commit['threads']}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, DuckDB "
        f"{duckdb.__version__}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after",
        "",
        "| extract | rows | commit s | of which persons resolved s | per M rows | "
        "pyarrow CSV -> Parquet s | ratio | peak RSS so far (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(commit["commits"]):
        b = c["baseline_seconds"]
        lines.append(f"| {i + 1} | {c['rows']:,} | {c['seconds']:.1f} | "
                     f"{c['link_seconds']:.1f} | {c['seconds'] * 1e6 / c['rows']:.2f} | "
                     f"{b:.1f} | {c['seconds'] / b:.2f}x | {c['peak_rss_mib']:.0f} |")
    lines += [
        f"| all | {total:,} | {commit_s:.1f} | {link_s:.1f} | {commit_s * per_m:.2f} | "
        f"{base_s:.1f} | **{commit_s / base_s:.2f}x** | **{peak:.0f}** |",
        "",
        f"Commit {commit_s * per_m:.2f} s per million rows = **{commit_s / base_s:.2f}x** "
        f"pyarrow's CSV -> Parquet ({base_s * per_m:.2f} s per million rows, peak RSS "
        f"{base_rss:.0f} MiB) in the same run ({(commit_s - link_s) / base_s:.2f}x "
        f"without resolving persons afterwards); the committing process's peak RSS "
        f"{peak:.0f} MiB.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as out:
            out.write(f"\n## commit_scale, {dt.date.today()}\n\n{text}\n")


if __name__ == "__main__":
    main()
