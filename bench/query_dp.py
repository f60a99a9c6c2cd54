"""A bounded DP group-by through the HTTP API, against exact DuckDB and OpenDP's Context.

Run:  .venv/bin/python bench/query_dp.py [--rows 10000000] [--units 2500000] [--repeat 3]
          [--linked]

Data: ``--rows`` synthetic bank alerts from 5 partners (equal shares), about ``--units``
privacy units, skewed: 90% of rows fall uniformly on the units (most units get 1-5 rows),
10% on 1% of the units (those get 50+ rows). 60 origin x 60 destination countries.

``--linked``: the extracts are ``bank_alerts`` v2 instead, each partner's accounts known by
their own IBAN and by the person's phone (80% of persons) and e-mail (40%), the same at every
partner, so that a person with accounts at several partners is one unit once linked
(hub.ingest.linkage resolves them at commit; every query then reads the persons map).

Commit: each partner's Parquet file goes through :class:`hub.ingest.service.IngestService` in this
process (start_upload, append_chunk, commit_upload: the same code the HTTP routes call:
every row re-validated, the canonical copy written, the rows numbered for contribution
bounding by hub.ingest.units). The commit time per million rows is reported.

Query (median of ``--repeat``), all in the same run over the same committed files:

* **tahub**: ``POST /v1/queries`` to a real uvicorn server on loopback: count + sum(amount)
  by (origin_country, destination_country) filtered to the 60 x 60 = 3,600 public cells,
  bounded to 10 rows per unit, zCDP rho = 1 (each repeat a different cost, so no reuse);
* **(a)** the plain exact DuckDB aggregate of the same grouping, no bounding (one DuckDB
  database kept open across repeats, 2 threads);
* **(b)** OpenDP's Polars ``Context``: the same DP query (identifier = subject, 10 rows per
  unit via ``truncate_per_group``, public keys via ``with_keys``, rho = 1).

and each shape of :data:`SHAPES` (Q1 a one-dimension count, Q2 the query above, Q3 a mean)
through the API against its own exact unbounded DuckDB aggregate, after one query that
computes the bound's cut and dropped rows (hub.query.bounds, once per dataset state).

Results are appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import hashlib
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import uvicorn

from hub.actors import Actor, MemberKind, Role
from hub.api.app import Services, create_app
from hub.ingest.service import UploadRequest
from hub.settings import Settings

COUNTRIES = ["RO", "NG", "GB", "IT", "DE", "FR", "ES", "PL", "BG", "UA", "VN", "PH", "TH", "IN",
             "PK", "BD", "CN", "AL", "MD", "RS", "HU", "GR", "TR", "LY", "EG", "MA", "DZ", "TN",
             "SN", "GH", "CI", "CM", "ER", "ET", "SO", "SD", "KE", "UG", "TZ", "ZA", "BR", "CO",
             "VE", "MX", "GT", "HN", "SV", "DO", "US", "CA", "AE", "SA", "QA", "KW", "LB", "JO",
             "IQ", "SY", "AF", "NP"]
POLICY = """
dataset: bank_alerts
accounting: zcdp
opened: "2020-01-01"
min_partners: 2
contribution_bounds: {max_rows: 10}
budget: {global: "1000", per_member: "1000", per_query: "10"}
rules:
  - name: bench
    who: {roles: [analyst]}
    dimensions: [origin_country, destination_country]
    max_dimensions: 2
    filters: [origin_country, destination_country]
    measures: [count, {function: sum, field: amount}, {function: mean, field: amount}]
"""
KEY_ID = "0badc0de"


def _extract(path: Path, partner: int, rows: int, units: int, indicator: str,
             linked: bool) -> None:
    """One partner's extract, written by DuckDB (tokens: <key id>.<sha256 hex>)."""
    heavy = max(units // 100, 1)
    codes = "[" + ", ".join(f"'{c}'" for c in COUNTRIES) + "]"
    person = f"CASE WHEN h % 10 = 0 THEN (h // 10) % {heavy} ELSE (h // 10) % {units} END"
    if linked:  # an IBAN of this partner's own; the person's phone and e-mail, shared
        identity = (f"'{KEY_ID}.' || sha256('iban{partner}:' || p) AS subject, "
                    f"CASE WHEN hash(p) % 10 < 8 THEN '{KEY_ID}.' || sha256('phone:' || p) END "
                    "AS customer_phone, "
                    f"CASE WHEN hash(p) % 10 < 4 THEN '{KEY_ID}.' || sha256('mail:' || p) END "
                    "AS customer_email")
    else:
        identity = f"'{KEY_ID}.' || sha256(p) AS subject"
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"""
        COPY (
          WITH r AS (SELECT i, hash(i * 7 + {partner}) AS h FROM range({rows}) t(i)),
               q AS (SELECT *, CAST({person} AS VARCHAR) AS p FROM r)
          SELECT {identity},
                 '{indicator}' AS indicator, 'funnel_account' AS typology,
                 CAST(NULL AS VARCHAR) AS exploitation_stream,
                 list_extract({codes}, CAST((h >> 20) % 60 AS INTEGER) + 1) AS origin_country,
                 list_extract({codes}, CAST((h >> 30) % 60 AS INTEGER) + 1)
                     AS destination_country,
                 round(CAST((h >> 40) % 5000000 AS DOUBLE) / 100, 2) AS amount,
                 '2025-' || lpad(CAST((h >> 50) % 12 + 1 AS VARCHAR), 2, '0') AS period
          FROM q
        ) TO '{path}' (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{
            'tahub.dataset': 'bank_alerts', 'tahub.contract_version': '{2 if linked else 1}',
            'tahub.key_id': '{KEY_ID}', 'tahub.connector_version': 'bench'}})
    """)
    con.close()


#: The query shapes, each with the exact unbounded DuckDB aggregate it is compared with:
#: (name, request body without cost, cells, SQL of the exact aggregate over the extracts).
SHAPES = {
    "Q1": ("count by origin (60 cells)",
           {"group_by": ["origin_country"], "measures": ["count"],
            "filters": {"origin_country": COUNTRIES}}, 60,
           "SELECT origin_country, count(*) FROM read_parquet(?) GROUP BY ALL"),
    "Q2": ("count + sum by origin x destination (3,600 cells)",
           {"group_by": ["origin_country", "destination_country"],
            "measures": ["count", {"function": "sum", "field": "amount"}],
            "filters": {"origin_country": COUNTRIES, "destination_country": COUNTRIES}}, 3600,
           "SELECT origin_country, destination_country, count(*), sum(amount) "
           "FROM read_parquet(?) GROUP BY ALL"),
    "Q3": ("mean amount by destination (60 cells)",
           {"group_by": ["destination_country"],
            "measures": [{"function": "mean", "field": "amount"}],
            "filters": {"destination_country": COUNTRIES}}, 60,
           "SELECT destination_country, avg(amount) FROM read_parquet(?) GROUP BY ALL"),
}


def ask(http: httpx.Client, i: int, shape: str = "Q2") -> None:
    """A benchmark query through the API; ``i`` varies the cost (no stored release)."""
    _, body, cells, _ = SHAPES[shape]
    resp = http.post("/v1/queries", json={"dataset": "bank_alerts", **body,
                                           "cost": f"{10**6 + i}/{10**6}"})
    if resp.status_code != 200 or len(resp.json()["rows"]) != cells:
        raise RuntimeError(resp.text[:500])


def _fincen_code(services: Services) -> str:
    return services.registry.get("bank_alerts", 1).field("indicator").codes[0]


def _commit(services: Services, actor: Actor, path: Path, version: int) -> None:
    data = path.read_bytes()
    started = services.ingest.start_upload(actor, UploadRequest(
        dataset="bank_alerts", contract_version=version, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), filename=path.name, transfer="chunks"))
    upload = started.upload
    if upload is None:
        raise RuntimeError("this content is already committed; use a fresh data folder")
    offset, chunk = upload.offset, services.settings.chunk_bytes
    while offset < len(data):
        upload = services.ingest.append_chunk(actor, upload.id, offset,
                                              data[offset:offset + chunk])
        offset = upload.offset
    services.ingest.commit_upload(actor, upload.id)


def _two_partners(services: Services, work: Path) -> Any:
    """Two banks' extracts of 100,000 alerts (25,000 customers each) committed, and an
    analysts' member registered: its credentials (bench/ledger_growth.py, reuse_load.py)."""
    fincen = _fincen_code(services)
    for p in range(2):
        path = work / f"partner{p}.parquet"
        _extract(path, p, 100_000, 25_000, fincen, False)
        creds = services.identity.register_member(f"Bench Bank {p}", MemberKind.BANK,
                                                  (Role.PARTNER,))
        _commit(services, Actor(creds.client_id, creds.org_id, creds.org_name,
                                frozenset({Role.PARTNER})), path, 1)
    return services.identity.register_member("Bench Analysts", MemberKind.OTHER,
                                             (Role.ANALYST,))


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, Any]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                           log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _median(fn: Any, repeat: int) -> float:
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=2_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-opendp", action="store_true", help="skip (b)")
    parser.add_argument("--linked", action="store_true",
                        help="bank_alerts v2: persons linked across partners by phone/e-mail")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tahub-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # gigabytes at 10M rows
    (work / "policies").mkdir()
    (work / "policies" / "bank_alerts.yaml").write_text(POLICY)
    settings = Settings(data_dir=work / "data", host="127.0.0.1", port=_port(),
                        policies_dir=work / "policies", log_level="WARNING",
                        chunk_bytes=64 * 1024 * 1024)
    server, thread, app = _serve(settings)
    services: Services = app.state.services
    fincen = _fincen_code(services)
    per = args.rows // 5
    commit_s = 0.0
    for p in range(5):
        path = work / f"partner{p}.parquet"
        _extract(path, p, per, args.units, fincen, args.linked)
        creds = services.identity.register_member(f"Bench Bank {p}", MemberKind.BANK,
                                                  (Role.PARTNER,))
        actor = Actor(creds.client_id, creds.org_id, creds.org_name, frozenset({Role.PARTNER}))
        t = time.perf_counter()
        _commit(services, actor, path, 2 if args.linked else 1)
        commit_s += time.perf_counter() - t
        path.unlink()
    files = [str(services.store.local_path(e.object_key))
             for e in services.ingest.visible_extracts("bank_alerts")]
    analyst = services.identity.register_member("Bench Analysts", MemberKind.OTHER,
                                                (Role.ANALYST,))
    url = f"http://127.0.0.1:{settings.port}"
    token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(analyst.client_id, analyst.client_secret)).json()["access_token"]
    http = httpx.Client(base_url=url, timeout=600,
                        headers={"Authorization": f"Bearer {token}"})

    asked = iter(range(10**6))

    def tahub(shape: str) -> Any:
        return lambda _: ask(http, next(asked), shape)

    warm = duckdb.connect()  # one open database, as tahub's queries share one
    warm.execute("SET threads = 2")

    def exact(shape: str) -> Any:
        return lambda _: warm.execute(SHAPES[shape][3], [files]).fetchall()

    def opendp(_: int) -> None:
        import opendp.prelude as dp
        import polars as pl

        dp.enable_features("contrib")
        keys = pl.LazyFrame({"origin_country": [o for o in COUNTRIES for _ in COUNTRIES],
                             "destination_country": COUNTRIES * len(COUNTRIES)})
        data = pl.scan_parquet(files).select(
            "subject", "origin_country", "destination_country",
            pl.col("amount").clip(0, 50000).round(0).cast(pl.Int64).alias("amount"))
        ctx = dp.Context.compositor(
            data=data, privacy_unit=dp.unit_of(contributions=10, identifier="subject"),
            privacy_loss=dp.loss_of(rho=1.0), split_evenly_over=1,
            margins=[dp.polars.Margin(max_length=args.rows * 2)])
        query = (ctx.query().truncate_per_group(10)
                 .group_by(["origin_country", "destination_country"])
                 .agg(dp.len(signed=True),
                      pl.col("amount").fill_null(0).dp.sum((0, 50_000)))  # type: ignore[attr-defined]
                 .with_keys(keys))
        out = query.release().collect()
        if out.height != 3600:
            raise RuntimeError(f"OpenDP released {out.height} cells")

    ask(http, next(asked), "Q2")  # the bound's cut and dropped rows, once per state
    times = {shape: (_median(tahub(shape), args.repeat), _median(exact(shape), args.repeat))
             for shape in SHAPES}
    tahub_s, exact_s = times["Q2"]
    opendp_s = None if args.no_opendp else _median(opendp, args.repeat)
    http.close()
    warm.close()
    server.should_exit = True
    thread.join(30)

    report = [
        f"\n## query_dp{' --linked' if args.linked else ''}, {dt.date.today().isoformat()}\n",
        f"{args.rows:,} rows from 5 partners (~{args.units:,} privacy units, skewed), "
        f"count + sum by 2 dimensions (3,600 public cells), 10 rows per unit, rho = 1; "
        f"median of {args.repeat}; {os.cpu_count()} cores, Python {platform.python_version()}."
        " Commit: IngestService in-process (the code path of the HTTP routes)."
        + (" bank_alerts v2, persons linked across partners by phone and e-mail (every "
           "query reads the persons map)." if args.linked else "") + "\n",
        "| what | seconds |", "|---|---|",
        f"| tahub, POST /v1/queries end to end (HTTP, bounded, DP, ledger) | {tahub_s:.2f} |",
        f"| (a) DuckDB exact aggregate, no bounding | {exact_s:.2f} |",
    ]
    if opendp_s is not None:
        report.append(f"| (b) OpenDP Polars Context, same DP query | {opendp_s:.2f} |")
    report += ["", f"tahub / (a): **{tahub_s / exact_s:.2f}x** (target <= 2x)", "",
               "| shape | tahub end to end, s | exact unbounded DuckDB, s | tahub / exact |",
               "|---|---|---|---|"]
    report += [f"| {shape}: {SHAPES[shape][0]} | {t:.3f} | {e:.3f} | **{t / e:.2f}x** |"
               for shape, (t, e) in times.items()]
    report.append("")
    if opendp_s is not None:
        report.append(f"(b) / tahub: **{opendp_s / tahub_s:.1f}x faster** (target >= 10x)")
    if args.linked:
        links = services.ingest.links.report(services.ingest.link_sources(), 1)
        report.append(f"Persons: {links.anchors:,} accounts -> {links.persons:,} persons "
                      f"({links.merged_persons:,} of them linked across accounts)")
    report.append(f"Commit (validate + canonical copy + unit numbering"
                  f"{', persons resolved' if args.linked else ''}): "
                  f"**{commit_s / (args.rows / 1e6):.2f} s per million rows** "
                  f"({commit_s:.1f} s in all)\n")
    text = "\n".join(report)
    print(text)
    with (Path(__file__).parent / "RESULTS.md").open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
