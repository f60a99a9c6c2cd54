"""Requests per second for a repeated query answered from its stored release, under load.

Run:  .venv/bin/python bench/reuse_load.py [--seconds 10] [--connections 16] [--workers 2]
                                           [--no-postgres]

A real hub (``tahub serve --workers N``, a separate process) on loopback over two partners'
extracts of 200,000 alerts, on SQLite (the embedded default) and on PostgreSQL
(127.0.0.1:5432, a throwaway database). Two releases are made once: a small one (10 x 10
cells, count) and a large one (60 x 60 cells, count and sum). Then a load generator (asyncio,
raw HTTP/1.1 keep-alive connections, in this process) sends the same ``POST /v1/queries``
again and again for ``--seconds`` (bounded in time), and counts the answers (each checked:
200 and ``"reused":true``, which the answer's last, raw zstd block carries in plain bytes).
Each release is asked for twice over: without ``Accept-Encoding`` (the JSON, decompressed
from the stored release) and with ``Accept-Encoding: zstd`` (the stored bytes as they are,
hub.query.answer); the answer size is what the wire carries. The load generator shares the
machine's cores with the hub:
the figures are what one 2-core machine serves to itself, a lower bound of what it serves
to clients elsewhere. The floor is the same load on ``GET /livez`` (no authentication, no
database, a few bytes): what this HTTP stack serves at most on this machine in the same run;
"floor / this" is how many times that rate each answer's rate is. The hub's CPU seconds per
request (its processes' user + system time over the load, from /proc) do not depend on
what else the machine runs. Results are appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from query_dp import COUNTRIES, POLICY, _port, _two_partners

from hub.api.app import build_services
from hub.settings import Settings
from tests.hub.postgres import postgres_database

SMALL = {"dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
         "measures": ["count"], "filters": {"origin_country": COUNTRIES[:10],
                                            "destination_country": COUNTRIES[:10]},
         "cost": "1/100"}
LARGE = {"dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
         "measures": ["count", {"function": "sum", "field": "amount"}],
         "filters": {"origin_country": COUNTRIES, "destination_country": COUNTRIES},
         "cost": "1/100"}


async def _load(port: int, request: bytes, check: bytes, header: bytes, seconds: float,
                connections: int) -> tuple[int, int]:
    """(answers, bytes of one answer) from ``connections`` keep-alive connections, each
    answer checked: status 200, ``header`` among its headers and ``check`` in its last 4 KB."""
    deadline = time.monotonic() + seconds
    done, size = 0, 0

    async def one() -> None:
        nonlocal done, size
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                answer = await reader.readexactly(length)
                if status != b"200" or header not in head.lower() or check not in answer[-4096:]:
                    raise RuntimeError(f"not the expected answer: {status!r} {answer[:300]!r}")
                done += 1
                size = length
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return done, size


def _post(port: int, token: str, body: dict[str, Any], encoding: str) -> bytes:
    payload = json.dumps(body).encode()
    accept = f"Accept-Encoding: {encoding}\r\n" if encoding else ""
    return (f"POST /v1/queries HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{accept}"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children so far (the hub's workers)."""
    pids, total = [pid], 0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(store: str, database_url: str, args: argparse.Namespace) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix=f"tahub-reuse-{store}-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # gigabytes at 10M rows
    (work / "policies").mkdir()
    (work / "policies" / "bank_alerts.yaml").write_text(POLICY)
    port = _port()
    settings = Settings(data_dir=work / "data", host="127.0.0.1", port=port,
                        policies_dir=work / "policies", log_level="WARNING",
                        database_url=database_url)
    services = build_services(settings)
    try:
        analyst = _two_partners(services, work)
    finally:
        services.close()
    env = {**os.environ, "TAHUB_DATA_DIR": str(settings.data_dir), "TAHUB_PORT": str(port),
           "TAHUB_POLICIES_DIR": str(work / "policies"), "TAHUB_DATABASE_URL": database_url,
           "TAHUB_LOG_LEVEL": "WARNING", "TAHUB_RATE_LIMIT_PER_MINUTE": "100000000",
           "TAHUB_QUERY_RATE_LIMIT_PER_MINUTE": "100000000"}
    hub = subprocess.Popen([str(Path(sys.executable).parent / "tahub"), "serve",
                            "--workers", str(args.workers)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    lines = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the hub did not start")
            time.sleep(0.3)
        token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(analyst.client_id, analyst.client_secret)
                           ).json()["access_token"]
        loads = [("floor: GET /livez, no authentication", b"GET /livez HTTP/1.1\r\nHost: x"
                  b"\r\n\r\n", b'"alive"', b"")]
        for name, body in (("small", SMALL), ("large", LARGE)):
            first = httpx.post(url + "/v1/queries", json=body, timeout=300,
                               headers={"Authorization": f"Bearer {token}"})
            first.raise_for_status()
            for encoding in ("", "zstd"):
                loads.append((f"{name} release, {encoding or 'identity'}",
                              _post(port, token, body, encoding), b'"reused":true',
                              b"content-encoding: zstd" if encoding else b""))
        floor = None
        for name, request, check, header in loads:
            cpu = _cpu_seconds(hub.pid)
            done, size = asyncio.run(_load(port, request, check, header, args.seconds,
                                           args.connections))
            per_request = (_cpu_seconds(hub.pid) - cpu) / max(done, 1) * 1000
            rps = done / args.seconds
            floor = floor or rps
            lines.append(f"| {store} | {name}, {size / 1000:,.1f} KB | {args.workers} | "
                         f"{args.connections} | **{rps:,.0f} req/s** | {floor / rps:.1f}x | "
                         f"{per_request:.2f} ms | {done:,} in {args.seconds:.0f} s |")
            print(lines[-1], flush=True)
    finally:
        hub.terminate()
        hub.wait(30)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    lines = run("SQLite", "", args)
    if not args.no_postgres:
        with postgres_database() as url:
            lines += run("PostgreSQL", url, args)
    text = "\n".join([
        f"\n## reuse_load, {dt.date.today().isoformat()}\n",
        f"A repeated query answered from its stored release under load: `tahub serve "
        f"--workers {args.workers}` on loopback, a load generator in another process "
        f"(asyncio, keep-alive), {os.cpu_count()} cores shared by both, load average "
        f"{os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}.\n",
        "| store | request, answer size | workers | connections | answered | floor / this | "
        "hub CPU per request | |", "|---|---|---|---|---|---|---|---|",
        *lines, ""])
    print(text)
    with (Path(__file__).parent / "RESULTS.md").open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
