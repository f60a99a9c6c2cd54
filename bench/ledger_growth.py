"""A repeated query served from its stored release, and a query's cost as the ledger grows.

Run:  .venv/bin/python bench/ledger_growth.py [--sizes 1000,3200,10000,30000] [--requests 300]

On SQLite (the embedded default) and on PostgreSQL (127.0.0.1:5432, a throwaway database),
with a real hub on loopback (uvicorn in this process, one worker) over two partners'
extracts of 200,000 alerts:

* **reuse**: the same ``POST /v1/queries`` again and again (answered from its stored
  release, free): requests per second from one client, and from eight clients at once, and
  the median time of one;
* **growth**: ledger entries of other members are added in bulk until the ledger holds each
  of ``--sizes`` entries; at each size, the median time of a *new* query (charged and
  computed) and of a repeated one. The ratio of the largest size to the smallest is the
  figure of merit: 1.0 means the query does not grow with the ledger.

Results are appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from query_dp import COUNTRIES, POLICY, _port, _serve, _two_partners

from hub.actors import MemberKind, Role
from hub.api.app import Services
from hub.settings import Settings
from hub.storage.db import ledger_entries, utcnow
from tests.hub.postgres import postgres_database


def _question(i: int) -> dict[str, Any]:
    """A query over 10 x 10 public cells; ``i`` makes it a new question (its cost)."""
    return {"dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
            "measures": ["count"], "filters": {"origin_country": COUNTRIES[:10],
                                               "destination_country": COUNTRIES[:10]},
            "cost": f"{10**6 + i}/{10**8}"}


def _median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _grow(services: Services, org: str, to: int) -> None:
    """Add entries of another member until the ledger holds ``to`` (bulk insert)."""
    engine = services.engine
    with engine.begin() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(ledger_entries)).scalar_one()
        rows = [{"id": f"led_bench{secrets.token_hex(10)}", "dataset": "bank_alerts",
                 "org_id": org, "measure": "zcdp", "amount_num": 1, "amount_den": 10**6,
                 "delta_num": 0, "delta_den": 1, "query_key": secrets.token_hex(32),
                 "status": "released", "created_at": utcnow(), "released_at": utcnow(),
                 "shape": {"measures": ["count"]}} for _ in range(max(0, to - have))]
        if rows:
            conn.execute(sa.insert(ledger_entries), rows)


def run(store: str, database_url: str, sizes: list[int], requests: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix=f"tahub-bench-{store}-"))
    (work / "policies").mkdir()
    (work / "policies" / "bank_alerts.yaml").write_text(
        POLICY.replace('global: "1000", per_member: "1000"',
                       'global: "100000", per_member: "100000"'))
    settings = Settings(data_dir=work / "data", host="127.0.0.1", port=_port(),
                        policies_dir=work / "policies", log_level="WARNING",
                        database_url=database_url, query_rate_limit_per_minute=10**6,
                        rate_limit_per_minute=10**6)
    server, thread, app = _serve(settings)
    services: Services = app.state.services
    analyst = _two_partners(services, work)
    others = services.identity.register_member("Other Analysts", MemberKind.OTHER,
                                               (Role.ANALYST,))
    url = f"http://127.0.0.1:{settings.port}"
    token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(analyst.client_id, analyst.client_secret)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    lines: list[str] = []
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            def ask(body: dict[str, Any]) -> dict[str, Any]:
                resp = http.post("/v1/queries", json=body)
                if resp.status_code != 200:
                    raise RuntimeError(resp.text[:300])
                out: dict[str, Any] = resp.json()
                return out

            ask(_question(0))
            start = time.perf_counter()
            for _ in range(requests):
                if not ask(_question(0))["reused"]:
                    raise RuntimeError("a repeated query was not answered from its release")
            one_rps = requests / (time.perf_counter() - start)

            def client(_: int) -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=120) as own:
                    for _ in range(requests // 8):
                        own.post("/v1/queries", json=_question(0)).raise_for_status()

            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(client, range(8)))
            eight_rps = (requests // 8 * 8) / (time.perf_counter() - start)
            size = len(http.post("/v1/queries", json=_question(0)).content)
            lines.append(f"| {store} | reuse, 1 client | {one_rps:,.0f} req/s | "
                         f"{1000 / one_rps:.1f} ms each, {size / 1000:.0f} KB |")
            lines.append(f"| {store} | reuse, 8 clients | {eight_rps:,.0f} req/s | |")
            counter = iter(range(1, 10**6))
            grown: list[tuple[int, float, float]] = []
            for n in sizes:
                _grow(services, others.org_id, n)
                new = _median_ms(lambda: ask(_question(next(counter))), 7)
                again = _median_ms(lambda: ask(_question(0)), 21)
                grown.append((n, new, again))
            for n, new, again in grown:
                lines.append(f"| {store} | ledger of {n:,} entries | new query {new:.0f} ms | "
                             f"repeated {again:.1f} ms |")
            (n0, new0, again0), (n1, new1, again1) = grown[0], grown[-1]
            lines.append(f"| {store} | growth {n1:,} / {n0:,} entries | new query "
                         f"**{new1 / new0:.2f}x** | repeated **{again1 / again0:.2f}x** |")
    finally:
        server.should_exit = True
        thread.join(30)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3200,10000,30000")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = run("SQLite", "", sizes, args.requests)
    if not args.no_postgres:
        with postgres_database() as url:
            lines += run("PostgreSQL", url, sizes, args.requests)
    text = "\n".join([
        f"\n## ledger_growth, {dt.date.today().isoformat()}\n",
        f"A repeated query (10 x 10 cells, answered from its stored release) and new queries "
        f"as the ledger grows; one uvicorn worker on loopback, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}.\n",
        "| store | what | measured | |", "|---|---|---|---|", *lines, ""])
    print(text)
    with (Path(__file__).parent / "RESULTS.md").open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
