"""Persons resolved at commit (hub.ingest.linkage): seconds and peak memory, 5 partners.

Run:  .venv/bin/python bench/linkage.py [--rows 10000000] [--repeat 3] [--check]

Synthetic ``bank_alerts`` v2 canonical extracts (``__unit`` and the three identifier columns
``subject`` / ``customer_phone`` / ``customer_email``, tokens of the connector's shape,
``<8 hex key id>.<64 hex>``), one extract of ``--rows / 5`` rows per partner: three banks
(IBAN always, phone 80%, e-mail 40% of accounts), a money-transfer firm (phone only) and an
e-money firm (e-mail always, phone 60%). About ``--rows / 4`` persons; 15% of them hold
accounts at two or three partners and then give each the same phone (so they link); one
"hub" phone per 125,000 persons is shared by 100-500 random accounts. Rows per account are
skewed (90% 1-4, 9.5% 5-12, 0.5% 30-100). ``__unit`` numbers each row's anchor (its first
identifier) by first arrival over the five extracts, as hub.ingest.units does.

Each measurement runs in a fresh child process (the script again, with a hidden ``--child``)
that reports its time and its peak RSS (``VmHWM``), next to the peak after imports:

* **baselines**: DuckDB reading the three identifier columns of all five files once, and
  ``count(DISTINCT customer_phone)`` over them (same connection settings as the index);
* **incremental**: ``LinkIndex.resolve`` after extract 1, then 1..2, ..., 1..5 on one
  folder, one child per step (what the hub pays across five commits);
* **no change**: the same state again, in a new process (maps on disk) and in the same
  process (in-memory cache);
* **withdrawal**: extract 3 withdrawn from the index holding all five (a rebuild from 4);
* **scratch**: all five at once on a fresh folder; then ``LinkIndex.report``.

The incremental and scratch maps are compared (always), and at ``--check`` (default for
``--rows`` <= 200,000) also against a plain-Python union-find over the rows. The median of
``--repeat`` runs is reported and appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hub.contracts.model import ContractRegistry
from hub.ingest.linkage import LinkIndex, LinkSource, identifier_columns

DATASET = "bank_alerts"
KEY_ID = b"5eb1c0de"  # 8 hex, as connectors/partner/pseudonymise.py
# (name, P(IBAN), P(phone), P(e-mail)) per partner, per account
PARTNERS = (("bank_a", 1.0, 0.8, 0.4), ("bank_b", 1.0, 0.8, 0.4), ("mto", 0.0, 1.0, 0.0),
            ("bank_c", 1.0, 0.8, 0.4), ("emoney", 0.0, 0.6, 1.0))
MULTI = 0.15  # persons at two or three partners
HUB_EVERY = 125_000  # one hub phone per this many persons


# -- data -------------------------------------------------------------------------------------
def _tokens(n: int, rng: np.random.Generator) -> pa.StringArray:
    """``n`` distinct random tokens of the connector's shape (73 bytes each)."""
    lut = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint8)
    lut = lut.reshape(256, 2)
    width = len(KEY_ID) + 1 + 64
    data = np.empty((n, width), dtype=np.uint8)
    data[:, :len(KEY_ID)] = np.frombuffer(KEY_ID, dtype=np.uint8)
    data[:, len(KEY_ID)] = ord(".")
    for start in range(0, n, 1_000_000):  # bounded temporaries
        stop = min(n, start + 1_000_000)
        raw = rng.integers(0, 256, (stop - start, 32), dtype=np.uint8)
        data[start:stop, len(KEY_ID) + 1:] = lut[raw].reshape(stop - start, 64)
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _rows_per_account(members: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """A member (account) per row, skewed, exactly ``rows`` rows, in random arrival order."""
    n = len(members)
    kind = rng.random(n)
    counts = np.where(kind < 0.90, rng.integers(1, 5, n),
                      np.where(kind < 0.995, rng.integers(5, 13, n), rng.integers(30, 101, n)))
    ids = np.repeat(members, counts)
    rng.shuffle(ids)
    if len(ids) < rows:
        ids = np.concatenate([ids, rng.choice(members, rows - len(ids))])
    return ids[:rows]


def generate(folder: Path, rows: int, seed: int = 20261208) -> dict[str, Any]:
    """Write one extract per partner into ``folder``; return what was generated."""
    rng = np.random.default_rng(seed)
    persons = max(rows // 4, 100)
    parts = len(PARTNERS)
    # the partners of each person: the first one, two or three of a random order
    order = np.argsort(rng.random((persons, parts)), axis=1).astype(np.int8)
    multi = rng.random(persons) < MULTI
    three = multi & (rng.random(persons) < 1 / 3)
    m_person = np.concatenate([np.arange(persons), np.flatnonzero(multi), np.flatnonzero(three)])
    m_partner = np.concatenate([order[:, 0], order[multi, 1], order[three, 2]])
    del order
    accounts = len(m_person)  # one account (membership) per person and partner
    probs = np.array([p[1:] for p in PARTNERS])
    draw = rng.random((accounts, 3)) < probs[m_partner]
    has_iban, has_phone, has_email = draw[:, 0], draw[:, 1], draw[:, 2]
    has_phone |= multi[m_person]  # persons at two or three partners link by their phone
    phone = m_person.copy()
    hubs = max(1, persons // HUB_EVERY)
    with_phone = np.flatnonzero(has_phone)
    for h in range(hubs):
        shared = rng.choice(with_phone, min(len(with_phone), int(rng.integers(100, 501))),
                            replace=False)
        phone[shared] = persons + h
    # anchor code of each account: IBAN (account id), else phone, else e-mail
    anchor = np.where(has_iban, np.arange(accounts),
                      np.where(has_phone, accounts + phone, accounts + persons + hubs + m_person))
    per = np.array_split(np.arange(rows), parts)
    row_account = [_rows_per_account(np.flatnonzero(m_partner == p), len(per[p]), rng)
                   for p in range(parts)]
    # __unit: anchors numbered 1, 2, ... by first arrival over the extracts in order
    codes = anchor[np.concatenate(row_account)]
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    unit = rank[inverse]
    del codes, first, inverse
    ibans, phones, emails = _tokens(accounts, rng), _tokens(persons + hubs, rng), _tokens(
        persons, rng)
    def pick(tokens: pa.StringArray, index: np.ndarray, present: np.ndarray,
             acc: np.ndarray) -> pa.Array:
        """Each row's token (null where its account has none)."""
        return tokens.take(pa.array(index[acc], mask=~present[acc]))

    paths, start = [], 0
    for p, acc in enumerate(row_account):
        table = pa.table({
            "__unit": pa.array(unit[start:start + len(acc)], pa.int64()),
            "subject": pick(ibans, np.arange(accounts), has_iban, acc),
            "customer_phone": pick(phones, phone, has_phone, acc),
            "customer_email": pick(emails, m_person, has_email, acc),
        })
        start += len(acc)
        path = folder / f"{PARTNERS[p][0]}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=256 * 1024)
        paths.append(path)
    return {"paths": [str(p) for p in paths], "persons": persons,
            "multi": int(multi.sum()), "three": int(three.sum()), "accounts": accounts,
            "hubs": hubs, "units": int(unit.max())}


def sources(paths: list[str]) -> list[LinkSource]:
    identifiers = identifier_columns(ContractRegistry.load().get(DATASET, 2))
    return [LinkSource(DATASET, f"ext_bench_{Path(p).stem}", Path(p), identifiers)
            for p in paths]


# -- child: one measurement in a fresh process -------------------------------------------------
def _mib() -> float:
    """This process's peak RSS in MiB: the kernel's high-water mark of its own memory
    (``VmHWM``). ``ru_maxrss`` would do on a fresh interpreter, but Linux carries the
    parent's peak into it across fork and exec, and the parent holds the generated data."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> float:
    """CPU seconds of this process, all threads (steadier than wall time on a shared
    machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    srcs = sources(spec["paths"])
    base = _mib()
    out: dict[str, Any] = {}
    cpu = _cpu()
    start = time.perf_counter()
    if spec["op"] in ("scan", "distinct"):
        con = duckdb.connect(config={"threads": 2, "autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        sql = ("SELECT sum(length(subject)), sum(length(customer_phone)), "
               "sum(length(customer_email)) FROM read_parquet(?)" if spec["op"] == "scan"
               else "SELECT count(DISTINCT customer_phone) FROM read_parquet(?)")
        out["result"] = list(con.execute(sql, [spec["paths"]]).fetchone() or ())
        con.close()
    elif spec["op"] == "resolve":
        index = LinkIndex(Path(spec["folder"]))
        maps = index.resolve(srcs)
        out["seconds"] = time.perf_counter() - start
        again = time.perf_counter()
        index.resolve(srcs)
        out["cached"] = time.perf_counter() - again
        out["map"] = None if maps[DATASET] is None else str(maps[DATASET])
    elif spec["op"] == "report":
        report = LinkIndex(Path(spec["folder"])).report(srcs)
        out["report"] = {k: getattr(report, k) for k in (
            "anchors", "identifiers", "persons", "merged_persons", "largest", "over_cap",
            "max_tokens")}
    out.setdefault("seconds", time.perf_counter() - start)
    out.update(cpu=_cpu() - cpu, base=base, peak=_mib())
    return out


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          check=True, capture_output=True, text=True)
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- checks -------------------------------------------------------------------------------------
def _map(path: str | None) -> dict[int, int]:
    if path is None:
        return {}
    t = pq.read_table(path)
    return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))


def _same_maps(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    con = duckdb.connect()
    try:
        differ = con.execute(
            "SELECT (SELECT count(*) FROM (FROM read_parquet(?) EXCEPT FROM read_parquet(?))) + "
            "(SELECT count(*) FROM (FROM read_parquet(?) EXCEPT FROM read_parquet(?)))",
            [a, b, b, a]).fetchone()
    finally:
        con.close()
    return differ == (0,)


def reference(paths: list[str]) -> dict[int, int]:
    """unit -> person (smallest unit of its component) for units that are not their own
    person, by a plain-Python union-find over the rows (small scale only)."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    units: set[int] = set()
    for path in paths:
        t = pq.read_table(path).to_pydict()
        for unit, *ids in zip(t["__unit"], t["subject"], t["customer_phone"],
                              t["customer_email"], strict=True):
            units.add(unit)
            for kind, value in zip(("iban", "phone", "email"), ids, strict=True):
                if value is not None:
                    parent[find((kind, value))] = find(("u", unit))
    members: dict[Any, list[int]] = defaultdict(list)
    for unit in units:
        members[find(("u", unit))].append(unit)
    return {u: min(us) for us in members.values() for u in us if u != min(us)}


# -- main ---------------------------------------------------------------------------------------
def _once(root: Path, paths: list[str], check: bool) -> dict[str, Any]:
    """One run of every measurement, on fresh index folders under ``root``."""
    r: dict[str, Any] = {}
    r["scan"] = _run({"op": "scan", "paths": paths})
    r["distinct"] = _run({"op": "distinct", "paths": paths})
    inc = root / "inc"
    for k in range(1, len(paths) + 1):
        r[f"step{k}"] = _run({"op": "resolve", "folder": str(inc), "paths": paths[:k]})
        print(f"  step {k}: {r[f'step{k}']['seconds']:.2f} s, "
              f"peak {r[f'step{k}']['peak']:.0f} MiB", flush=True)
    r["again"] = _run({"op": "resolve", "folder": str(inc), "paths": paths})
    r["index_mib"] = (inc / "links.duckdb").stat().st_size / 2**20
    scratch = root / "scratch"
    r["scratch"] = _run({"op": "resolve", "folder": str(scratch), "paths": paths})
    r["report"] = _run({"op": "report", "folder": str(scratch), "paths": paths})
    inc_map, scratch_map = r[f"step{len(paths)}"]["map"], r["scratch"]["map"]
    if not _same_maps(inc_map, scratch_map):
        raise SystemExit(f"incremental and scratch maps differ: {inc_map} {scratch_map}")
    kept = paths[:2] + paths[3:]
    r["withdraw"] = _run({"op": "resolve", "folder": str(inc), "paths": kept})
    r["withdrawn_mib"] = (inc / "links.duckdb").stat().st_size / 2**20
    if check:
        want = reference(paths)
        if _map(scratch_map) != want:
            raise SystemExit("scratch maps differ from the union-find reference")
        four = _run({"op": "resolve", "folder": str(root / "scratch4"), "paths": kept})
        if not (_same_maps(r["withdraw"]["map"], four["map"])
                and _map(four["map"]) == reference(kept)):
            raise SystemExit("the rebuild after a withdrawal differs from the reference")
        for k in range(1, len(paths)):  # every incremental step against the reference
            if _map(r[f"step{k}"]["map"]) != reference(paths[:k]):
                raise SystemExit(f"incremental step {k} differs from the reference")
        print(f"  check: incremental, scratch and withdrawal maps equal the union-find "
              f"reference ({len(want):,} units mapped to another unit)")
    for folder in (inc, scratch, root / "scratch4"):
        shutil.rmtree(folder, ignore_errors=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                        help="compare with a plain-Python union-find (default: rows <= 200k)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--label", help="a note for the RESULTS.md heading")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    check = args.rows <= 200_000 if args.check is None else args.check
    began, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tahub-bench-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        t0 = time.perf_counter()
        data = generate(root / "data", args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        paths = data["paths"]
        disk = sum(Path(p).stat().st_size for p in paths) / 2**20
        runs = []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat}", flush=True)
            runs.append(_once(root, paths, check))
    minutes = (time.perf_counter() - began) / 60

    def med(key: str, field: str = "seconds") -> float:
        return statistics.median(float(r[key][field]) for r in runs)

    n = len(PARTNERS)
    steps = [f"step{k}" for k in range(1, n + 1)]
    total = {f: statistics.median(sum(float(r[s][f]) for s in steps) for r in runs)
             for f in ("seconds", "cpu")}
    total_peak = statistics.median(max(float(r[s]["peak"]) for s in steps) for r in runs)
    base = statistics.median(float(v["base"]) for r in runs for v in r.values()
                             if isinstance(v, dict))
    rep = runs[-1]["report"]["report"]
    scan, scan_cpu = med("scan"), med("scan", "cpu")

    def row(label: str, key: str) -> str:
        peak = med(key, "peak")
        return (f"| {label} | {med(key):.2f} | {med(key, 'cpu'):.2f} | "
                f"{med(key) / scan:.1f}x | {peak:,.0f} | {peak - med(key, 'base'):,.0f} |")

    lines = [
        f"{args.rows:,} rows of bank_alerts v2 from {n} partners (one extract each: 3 banks, "
        f"a money-transfer firm with phones only, an e-money firm keyed by e-mail), "
        f"{data['persons']:,} generated persons ({data['multi']:,} at 2-3 partners, "
        f"{data['three']:,} of them at 3; {data['accounts']:,} accounts; "
        f"{data['hubs']} hub phones of 100-500 accounts), {data['units']:,} units; "
        f"{disk:,.0f} MiB of zstd Parquet; median of {args.repeat}; each line a fresh process "
        f"(CPU = user + system seconds of all its threads; peak RSS = the child's VmHWM; "
        f"imports alone {base:,.0f} MiB); {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}; load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other jobs shared "
        f"the machine: compare CPU seconds and ratios); {minutes:.1f} min in all.",
        "",
        "| step | seconds | CPU s | seconds / scan | peak RSS MiB | above imports MiB |",
        "|---|---|---|---|---|---|",
        row("(baseline) DuckDB reads the 3 identifier columns of all 5 files", "scan"),
        row("(baseline) DuckDB count(DISTINCT customer_phone), all 5 files", "distinct"),
    ]
    lines += [row(f"incremental: resolve at commit {k} (extracts 1..{k})", f"step{k}")
              for k in range(1, n + 1)]
    lines += [
        f"| **incremental: the 5 commits in all** | **{total['seconds']:.2f}** | "
        f"**{total['cpu']:.2f}** | {total['seconds'] / scan:.1f}x | {total_peak:,.0f} (max) "
        f"| |",
        row("**scratch: all 5 extracts on a fresh index** (a withdrawal's cost)", "scratch"),
        row("withdrawal of extract 3 from the index of 5 (rebuild from 4)", "withdraw"),
        row("no change, new process (maps on disk)", "again"),
        f"| no change, same process (in-memory cache) | {med('again', 'cached'):.4f} "
        f"| | | | |",
        row("LinkIndex.report (after scratch)", "report"),
        "",
        f"Persons (LinkIndex.report): {rep['anchors']:,} units (anchors), "
        f"{rep['identifiers']:,} identifiers, **{rep['persons']:,} persons**, "
        f"{rep['merged_persons']:,} of them merged from 2+ units; largest person "
        f"{rep['largest']:,} identifiers; {rep['over_cap']} over max_tokens "
        f"{rep['max_tokens']}. Index file after 5 commits: "
        f"{statistics.median(r['index_mib'] for r in runs):,.0f} MiB, after the withdrawal "
        f"{statistics.median(r['withdrawn_mib'] for r in runs):,.0f} MiB. Incremental maps equal "
        f"the scratch maps{' and a plain-Python union-find' if check else ''}.",
        "",
        f"Incremental total / scratch: **{total['seconds'] / med('scratch'):.2f}x** "
        f"(CPU {total['cpu'] / med('scratch', 'cpu'):.2f}x); scratch / scan baseline: "
        f"**{med('scratch') / scan:.1f}x** (CPU {med('scratch', 'cpu') / scan_cpu:.1f}x); "
        f"commit 5 / scratch: {med(steps[-1]) / med('scratch'):.2f}x",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as out:
            label = f" ({args.label})" if args.label else ""
            out.write(f"\n## linkage, {dt.date.today()}{label}\n\n{text}\n")


if __name__ == "__main__":
    main()
