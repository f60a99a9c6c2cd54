"""A 1 GB extract through a direct (presigned multipart) upload, against a plain minio SDK
``fput_object`` of the same file to the same S3 server, in the same run.

Run:  .venv/bin/python bench/upload_s3.py [--rows 12000000]

S3 is moto's server on loopback (the test server of tests/s3server.py), reached through
the minio SDK by the hub and by plain HTTP PUTs to presigned URLs by the connector
(``connectors.HubClient``). Timed: the transfer (start + parts PUT straight to the store),
the commit (assembly, the hub streaming the object to its disk, every row checked, the
canonical copy written back to S3), and ``fput_object`` with the same part size. Results are
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
from pathlib import Path

import duckdb
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* helpers

from query_dp import KEY_ID, _port, _serve  # bench/ is sys.path[0] when run as a script

from connectors.partner.client import HubClient
from hub.actors import MemberKind, Role
from hub.api.app import Services
from hub.contracts.model import ContractRegistry
from hub.settings import Settings
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, running_s3_server


def _extract(path: Path, rows: int) -> None:
    """An uncompressed bank_alerts extract (about 85 bytes a row), written by DuckDB."""
    code = ContractRegistry.load().get("bank_alerts", 1).field("indicator").codes[0]
    con = duckdb.connect()
    con.execute(f"""
        COPY (SELECT '{KEY_ID}.' || sha256(CAST(i % 1000003 AS VARCHAR)) AS subject,
                     '{code}' AS indicator, 'funnel_account' AS typology,
                     CAST(NULL AS VARCHAR) AS exploitation_stream,
                     'RO' AS origin_country, 'GB' AS destination_country,
                     CAST(i % 50000 AS DOUBLE) AS amount, '2025-01' AS period
              FROM range({rows}) t(i))
        TO '{path}' (FORMAT parquet, COMPRESSION uncompressed, KV_METADATA {{
            'tahub.dataset': 'bank_alerts', 'tahub.contract_version': '1',
            'tahub.key_id': '{KEY_ID}', 'tahub.connector_version': 'bench'}})
    """)
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=12_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tahub-bench-upload-"))
    path = work / "alerts.parquet"
    _extract(path, args.rows)
    size = path.stat().st_size
    with running_s3_server() as s3:
        bucket = s3.make_bucket()
        settings = Settings(data_dir=work / "data", host="127.0.0.1", port=_port(),
                            log_level="WARNING", storage=f"s3://{bucket}/hub",
                            s3_endpoint=s3.endpoint, s3_access_key=ACCESS_KEY,
                            s3_secret_key=SecretStr(SECRET_KEY), s3_region=REGION,
                            max_extract_bytes=4 * 1024**3)
        server, thread, app = _serve(settings)
        services: Services = app.state.services
        creds = services.identity.register_member("Bench Bank", MemberKind.BANK,
                                                  (Role.PARTNER,))
        sent_at: list[float] = []

        def progress(done: int, total: int) -> None:
            if done == total and not sent_at:
                sent_at.append(time.perf_counter())

        with HubClient(settings.public_url, creds.client_id, creds.client_secret,
                       timeout=600) as client:
            t0 = time.perf_counter()
            outcome = client.upload(path, dataset="bank_alerts", contract_version=1,
                                    on_progress=progress)
            t1 = time.perf_counter()
        if outcome.extract.rows != args.rows:
            raise RuntimeError(f"committed {outcome.extract.rows} rows")
        part_bytes = services.ingest.part_bytes_for(size)
        t2 = time.perf_counter()
        s3.client().fput_object(bucket, "baseline/alerts.parquet", str(path),
                                part_size=part_bytes)
        baseline = time.perf_counter() - t2
        server.should_exit = True
        thread.join(30)
    transfer, commit = sent_at[0] - t0, t1 - sent_at[0]
    mb = size / 1e6
    text = "\n".join([
        f"\n## upload_s3, {dt.date.today().isoformat()}\n",
        f"One {mb:,.0f} MB extract ({args.rows:,} rows, uncompressed Parquet) to moto's S3 "
        f"server on loopback, {part_bytes // 2**20} MiB parts; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.\n",
        "| what | seconds | MB/s |", "|---|---|---|",
        f"| direct upload: start + presigned part PUTs (tahub-connect's HubClient) | "
        f"{transfer:.1f} | {mb / transfer:.0f} |",
        f"| minio SDK fput_object, same file, same part size | {baseline:.1f} | "
        f"{mb / baseline:.0f} |",
        f"| commit: assemble, stream to the hub, check every row, canonical copy to S3 | "
        f"{commit:.1f} | {mb / commit:.0f} |",
        "",
        f"direct upload / fput_object: **{transfer / baseline:.2f}x** the time "
        f"({(mb / transfer) / (mb / baseline):.2f} of its throughput)\n",
    ])
    print(text)
    with (Path(__file__).parent / "RESULTS.md").open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
