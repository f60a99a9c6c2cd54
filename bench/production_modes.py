"""The query benchmark of bench/query_dp.py in both modes: embedded (SQLite + local folder)
and production (PostgreSQL + S3 through the minio SDK, here moto's S3 server on loopback).

Run:  .venv/bin/python bench/production_modes.py [--rows 10000000] [--units 2500000]

The same five partner extracts are committed in each mode (IngestService in-process), then
the same bounded DP count + sum by 2 dimensions goes through ``POST /v1/queries`` on a real
uvicorn server: the first query of the production hub fetches every extract from S3 into its
local cache (cold), the next ones read the cache (median of ``--repeat``). Results are
appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* helpers

from query_dp import (  # bench/ is sys.path[0] when run as a script
    POLICY,
    _commit,
    _extract,
    _median,
    _port,
    _serve,
    ask,
)

from hub.actors import Actor, MemberKind, Role
from hub.api.app import Services
from hub.contracts.model import ContractRegistry
from hub.settings import Settings
from tests.hub.postgres import postgres_database
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, running_s3_server


@contextmanager
def _production(stack: ExitStack) -> Iterator[dict[str, Any]]:
    server = stack.enter_context(running_s3_server())
    bucket = server.make_bucket()
    url = stack.enter_context(postgres_database())
    yield {"storage": f"s3://{bucket}/hub", "s3_endpoint": server.endpoint,
           "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY, "s3_region": REGION,
           "database_url": url}


def _run(mode: str, overrides: dict[str, Any], extracts: list[Path],
         repeat: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"tahub-bench-{mode}-"))
    (work / "policies").mkdir()
    (work / "policies" / "bank_alerts.yaml").write_text(POLICY)
    settings = Settings(data_dir=work / "data", host="127.0.0.1", port=_port(),
                        policies_dir=work / "policies", log_level="WARNING",
                        chunk_bytes=64 * 1024 * 1024, **overrides)
    server, thread, app = _serve(settings)
    services: Services = app.state.services
    commit_s = 0.0
    for p, path in enumerate(extracts):
        creds = services.identity.register_member(f"Bench Bank {p}", MemberKind.BANK,
                                                  (Role.PARTNER,))
        actor = Actor(creds.client_id, creds.org_id, creds.org_name, frozenset({Role.PARTNER}))
        t = time.perf_counter()
        _commit(services, actor, path, 1)
        commit_s += time.perf_counter() - t
    cache = settings.extract_cache_dir
    for cached in cache.rglob("*") if cache.exists() else []:  # the first query fetches
        if cached.is_file():
            cached.unlink()
    analyst = services.identity.register_member("Bench Analysts", MemberKind.OTHER,
                                                (Role.ANALYST,))
    url = f"http://127.0.0.1:{settings.port}"
    token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(analyst.client_id, analyst.client_secret)).json()["access_token"]
    http = httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {token}"})

    def query(i: int) -> None:
        ask(http, i)

    cold = _median(query, 1)
    warm = _median(lambda i: query(i + 1), repeat)
    http.close()
    server.should_exit = True
    thread.join(30)
    return {"commit": commit_s, "cold": cold, "warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=2_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = Path(tempfile.mkdtemp(prefix="tahub-bench-extracts-"))
    extracts = []
    fincen = ContractRegistry.load().get("bank_alerts", 1).field("indicator").codes[0]
    for p in range(5):
        path = source / f"partner{p}.parquet"
        _extract(path, p, args.rows // 5, args.units, fincen, False)
        extracts.append(path)
    results = {}
    with ExitStack() as stack:
        results["embedded"] = _run("embedded", {}, extracts, args.repeat)
        with _production(stack) as overrides:
            results["production"] = _run("production", overrides, extracts, args.repeat)
    emb, prod = results["embedded"], results["production"]
    millions = args.rows / 1e6
    text = "\n".join([
        f"\n## production_modes, {dt.date.today().isoformat()}\n",
        f"The query of query_dp ({args.rows:,} rows from 5 partners, ~{args.units:,} units, "
        f"count + sum over 3,600 cells, rho = 1) in both modes; warm = median of "
        f"{args.repeat}; {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Production: PostgreSQL 127.0.0.1:5432, S3 = moto server on loopback (minio SDK).\n",
        "| mode | commit s per million rows | first query (cold cache) s | query (warm) s |",
        "|---|---|---|---|",
        f"| embedded (SQLite + folder) | {emb['commit'] / millions:.2f} | {emb['cold']:.2f} | "
        f"{emb['warm']:.2f} |",
        f"| production (PostgreSQL + S3) | {prod['commit'] / millions:.2f} | "
        f"{prod['cold']:.2f} | {prod['warm']:.2f} |",
        "",
        f"production / embedded, warm query: **{prod['warm'] / emb['warm']:.2f}x**; "
        f"commit: **{prod['commit'] / emb['commit']:.2f}x**\n",
    ])
    print(text)
    with (Path(__file__).parent / "RESULTS.md").open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
