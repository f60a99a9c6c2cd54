"""The DP queries of bench/query_dp.py on both engines: DuckDB in the hub and a Spark cluster.

Run:  .venv/bin/python bench/engines.py [--rows 1000000 10000000] [--repeat 3]
          [--cores-per-worker 8] [--results bench/RESULTS.md] [--no-record]

For each ``--rows``: query_dp's synthetic bank alerts (5 partners, ~rows/4 skewed privacy
units) committed once through :class:`hub.ingest.service.IngestService` in this process,
with the default engine (DuckDB in the hub). Then the hub is served twice over the same data
folder, each time as a process of its own (``tahub serve``):

* with the default engine, DuckDB in the hub;
* with ``TAHUB_ENGINE=spark`` on a standalone Spark cluster started on loopback for this
  size (tests/sparkcluster.py: a master, two workers of one core each, a Spark Connect
  server; the committed extracts are local files the cluster reads by path).

Each engine first answers one warm-up query (Q2), which computes contribution bounding's
cut and dropped-row files on that engine (the other engine's are removed before). Then each
shape of query_dp's ``SHAPES`` goes through ``POST /v1/queries`` (median of ``--repeat``,
each with a different cost, so no release is reused), next to query_dp's exact unbounded
DuckDB aggregate of the same files, run in this process. Peak memory (VmHWM) is sampled every
second from /proc for the hub process, for every process the cluster started and for their
descendants (the executors are children of the workers). Their CPU time is sampled too, and
the share of the machine's CPU that other processes took while each hub answered is
reported (/proc/stat's busy time less this run's).

From the medians at the sizes run, each engine's time is fitted as fixed + rows x per-row
cost. That gives the row count above which Spark would be faster on this machine, and a
paper estimate for 10 billion rows on N workers of ``--cores-per-worker`` cores: Spark's
per-row cost divided by the cluster's cores (shuffles, the driver and the network are
ignored), against DuckDB on one node.

Last, while the cluster is up, the same five extracts are committed again, into a data
folder of their own, by an ``IngestService`` with ``TAHUB_ENGINE=spark`` in this process
(:mod:`hub.ingest.clustered`: the checks, the numbering and the canonical copy as Spark
jobs), with the peak memory of this process and of the cluster's; and both sets of committed
files must hold the same rows, fixed-point sums, units and sequence numbers per cell of Q2
(``SAME``). Commit times are
fitted like the queries' (fixed + rows x per-row cost).

A section is appended to ``--results`` (bench/RESULTS.md) unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import itertools
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* helpers

import duckdb
import httpx
import pyspark
from query_dp import POLICY, SHAPES, _commit, _extract, _fincen_code, _median, _port, ask

from hub.actors import Actor, MemberKind, Role
from hub.api.app import Services, build_services
from hub.identity.service import Credentials
from hub.logging import configure_logging
from hub.settings import Settings
from hub.storage.objects import parquet_parts
from tests.sparkcluster import WORKERS, SparkCluster

CLOCK = os.sysconf("SC_CLK_TCK")
BYTES_PER_ROW = 70  # docs/production.md: canonical copies and the unit index
PAPER_ROWS = 10_000_000_000
PAPER_WORKERS = (10, 50, 100)
#: Spark's processes by a class on their command line (the launcher that builds a JVM's
#: command line lives for a second and is left out).
SPARK_KINDS = (("CoarseGrainedExecutorBackend", "executor"),
               ("deploy.master.Master", "master"), ("deploy.worker.Worker", "worker"),
               ("SparkConnectServer", "connect server (driver)"),
               ("launcher.Main", ""), ("jspawnhelper", ""))
HUB_KINDS = {"duckdb": "hub, DuckDB engine", "spark": "hub, Spark engine (Spark Connect client)"}
#: What both commits must give alike, cell by cell of Q2: rows, their fixed-point sum (what
#: a sum adds: summing doubles in another order differs in the last bits), units and the
#: largest sequence number (the salts differ, so the priorities are not compared).
SAME = ("SELECT origin_country, destination_country, count(*), sum(__fx_amount), "
        "count(DISTINCT __unit), max(__seq) FROM read_parquet(?) GROUP BY ALL")
#: The processes of the memory table, in its order, with their JVM settings.
HEAPS = {HUB_KINDS["duckdb"]: "", HUB_KINDS["spark"]: "no JVM",
         "connect server (driver)": "768m heap", "master": "256m heap",
         "worker": "256m heap", "executor": "640m heap, 1 core"}


class Peaks:
    """The peak resident memory (VmHWM) and the CPU time of some processes and their
    descendants, sampled every second in a thread (a process that ends keeps the last
    values seen)."""

    def __init__(self) -> None:
        self._roots: dict[int, str | None] = {}  # pid -> its kind (None: from its cmdline)
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (kind, peak kB)
        self._ticks: dict[int, int] = {}  # pid -> user + system CPU ticks, last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int, kind: str | None = None) -> None:
        self._roots[pid] = kind
        self.sample()

    def stop(self) -> dict[str, list[int]]:
        """The peaks (MiB) of each kind of process, largest first."""
        self.sample()
        self._stop.set()
        self._thread.join()
        kinds: dict[str, list[int]] = {}
        for kind, kb in self.peaks.values():
            kinds.setdefault(kind, []).append(kb // 1024)
        return {k: sorted(v, reverse=True) for k, v in kinds.items()}

    def cpu(self) -> float:
        """CPU seconds of this process and of the watched processes so far."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            ticks = sum(self._ticks.values())
        return usage.ru_utime + usage.ru_stime + ticks / CLOCK

    def reset(self) -> None:
        """Start the watched processes' peaks afresh (/proc/<pid>/clear_refs)."""
        children, _ = _processes()
        with self._lock:
            for root in self._roots:
                for pid in _tree(root, children):
                    _hwm_reset(pid)
            self.peaks.clear()

    def sample(self) -> None:
        children, ticks = _processes()
        with self._lock:
            for root, kind in list(self._roots.items()):
                for pid in _tree(root, children):
                    self._ticks[pid] = max(ticks.get(pid, 0), self._ticks.get(pid, 0))
                    self._record(pid, kind)

    def _record(self, pid: int, kind: str | None) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return
        hwm = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmHWM:")), 0)
        if kind is None:
            kind = next((k for cls, k in SPARK_KINDS if cls in cmdline),
                        f"other ({Path(cmdline.split(chr(0))[0]).name})")
        if kind and hwm:
            self.peaks[pid] = (kind, max(hwm, self.peaks.get(pid, ("", 0))[1]))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()


def _processes() -> tuple[dict[int, list[int]], dict[int, int]]:
    """Every process's children, and its user + system CPU ticks."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid, ppid = int(stat.parent.name), int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
    return children, ticks


def _tree(root: int, children: dict[int, list[int]]) -> Iterator[int]:
    todo = [root]
    while todo:
        pid = todo.pop()
        yield pid
        todo += children.get(pid, [])


def _busy() -> float:
    """CPU seconds the whole machine has been busy (every core, /proc/stat)."""
    user, nice, system, _, _, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split(maxsplit=9)[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK


def _hwm_reset(pid: int | str = "self") -> None:
    """Start a process's peak RSS afresh (Linux: /proc/<pid>/clear_refs)."""
    with contextlib.suppress(OSError):  # a process that ended meanwhile
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _hwm_mib() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmHWM:")) // 1024


@dataclass
class Run:
    """One engine's times at one size: the warm-up and the median of each shape."""

    warmup: float = 0.0
    shapes: dict[str, float] = field(default_factory=dict)
    others: float = 0.0  # the share of the machine's CPU other processes took meanwhile


@dataclass
class Size:
    rows: int
    commit_s: float = 0.0
    commit_mib: int = 0
    spark_commit_s: float = 0.0
    spark_commit_mib: int = 0  # this process: the hub, a Spark Connect client
    spark_commit_memory: dict[str, list[int]] = field(default_factory=dict)
    same_exact: bool = False
    cluster_start_s: float = 0.0
    exact: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    memory: dict[str, list[int]] = field(default_factory=dict)


def _hub(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``tahub serve`` on ``port``, once it answers /readyz."""
    with log.open("ab") as out:
        hub = subprocess.Popen([str(Path(sys.executable).parent / "tahub"), "serve"],
                               env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT)
    atexit.register(hub.kill)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and hub.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return hub
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    hub.kill()
    raise RuntimeError(f"the hub did not start:\n{log.read_text()[-3000:]}")


def _engine(env: dict[str, str], analyst: Credentials, asked: Iterator[int], repeat: int,
            peaks: Peaks, kind: str, log: Path) -> Run:
    """Serve the hub with ``env``; a warm-up query, then each shape's median."""
    port = _port()
    hub = _hub({**env, "TAHUB_PORT": str(port)}, port, log)
    peaks.watch(hub.pid, kind)
    run = Run()
    url = f"http://127.0.0.1:{port}"
    wall, busy, ours = time.monotonic(), _busy(), peaks.cpu()
    try:
        token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(analyst.client_id, analyst.client_secret)
                           ).json()["access_token"]
        with httpx.Client(base_url=url, timeout=900,
                          headers={"Authorization": f"Bearer {token}"}) as http:

            def query(shape: str) -> Callable[[int], None]:
                return lambda _: ask(http, next(asked), shape)

            run.warmup = _median(query("Q2"), 1)  # computes the cut and dropped-row files
            run.shapes = {shape: _median(query(shape), repeat) for shape in SHAPES}
    finally:
        peaks.sample()
        run.others = ((_busy() - busy) - (peaks.cpu() - ours)) / (
            (time.monotonic() - wall) * (os.cpu_count() or 1))
        hub.terminate()
        hub.wait(30)
    return run


def measure(rows: int, repeat: int, asked: Iterator[int]) -> Size:
    work = Path(tempfile.mkdtemp(prefix="tahub-bench-engines-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # gigabytes at 10M rows
    (work / "policies").mkdir()
    (work / "policies" / "bank_alerts.yaml").write_text(POLICY)
    data = work / "data"
    settings = Settings(data_dir=data, policies_dir=work / "policies", log_level="WARNING",
                        chunk_bytes=64 * 1024 * 1024)
    size = Size(rows)
    configure_logging(settings)
    services = build_services(settings)
    try:
        fincen = _fincen_code(services)
        extracts = [work / f"partner{p}.parquet" for p in range(5)]
        for p, path in enumerate(extracts):
            _extract(path, p, rows // 5, rows // 4, fincen, False)
        _hwm_reset()
        size.commit_s = _commit_all(services, extracts)
        size.commit_mib = _hwm_mib()
        files = [str(services.store.local_path(e.object_key))
                 for e in services.ingest.visible_extracts("bank_alerts")]
        analyst = services.identity.register_member("Bench Analysts", MemberKind.OTHER,
                                                    (Role.ANALYST,))
    finally:
        services.close()
    print(f"{rows:,} rows committed in {size.commit_s:.1f} s", flush=True)

    env = {"TAHUB_DATA_DIR": str(data), "TAHUB_POLICIES_DIR": str(work / "policies"),
           "TAHUB_HOST": "127.0.0.1", "TAHUB_LOG_LEVEL": "WARNING",
           "TAHUB_RATE_LIMIT_PER_MINUTE": "100000000",
           "TAHUB_QUERY_RATE_LIMIT_PER_MINUTE": "100000000"}
    peaks = Peaks()
    shutil.rmtree(data / "cache" / "bounds", ignore_errors=True)
    size.runs["duckdb"] = _engine(env, analyst, asked, repeat, peaks, HUB_KINDS["duckdb"],
                                  work / "hub-duckdb.log")
    print(f"duckdb: {size.runs['duckdb']}", flush=True)

    exact = duckdb.connect()  # query_dp's baseline: one open database, 2 threads
    exact.execute("SET threads = 2")
    for shape, (_, _, _, sql) in SHAPES.items():
        size.exact[shape] = _median(lambda _, sql=sql: exact.execute(sql, [files]).fetchall(),
                                    repeat)
    exact.close()

    cluster = SparkCluster(work / "spark")
    atexit.register(cluster.stop)
    t = time.perf_counter()
    cluster.start()
    size.cluster_start_s = time.perf_counter() - t
    try:
        for proc in cluster.procs:
            peaks.watch(proc.pid)
        shutil.rmtree(data / "cache" / "bounds", ignore_errors=True)  # DuckDB's cut files
        spark = {**env, "TAHUB_ENGINE": "spark", "TAHUB_SPARK_REMOTE": cluster.remote,
                 "TAHUB_SPARK_SHARED_DIR": str(data)}
        size.runs["spark"] = _engine(spark, analyst, asked, repeat, peaks,
                                     HUB_KINDS["spark"], work / "hub-spark.log")
        print(f"spark: {size.runs['spark']}", flush=True)
        size.memory = peaks.stop()
        spark_files = _spark_commits(size, work, extracts, cluster)
    finally:
        cluster.stop()
    exact = duckdb.connect()
    exact.execute("SET threads = 2")
    size.same_exact = (sorted(exact.execute(SAME, [files]).fetchall())
                       == sorted(exact.execute(SAME, [spark_files]).fetchall()))
    exact.close()
    return size


def _commit_all(services: Services, extracts: list[Path]) -> float:
    """Commit each extract as a bank of its own; the seconds the commits took."""
    took = 0.0
    for p, path in enumerate(extracts):
        creds = services.identity.register_member(f"Bench Bank {p}", MemberKind.BANK,
                                                  (Role.PARTNER,))
        t = time.perf_counter()
        _commit(services, Actor(creds.client_id, creds.org_id, creds.org_name,
                                frozenset({Role.PARTNER})), path, 1)
        took += time.perf_counter() - t
    return took


def _spark_commits(size: Size, work: Path, extracts: list[Path], cluster: SparkCluster
                   ) -> list[str]:
    """Commit ``extracts`` again with ``TAHUB_ENGINE=spark`` into a data folder of their own;
    the committed files (every part of every extract)."""
    data = work / "data-spark"
    settings = Settings(data_dir=data, policies_dir=work / "policies", log_level="WARNING",
                        chunk_bytes=64 * 1024 * 1024, engine="spark",
                        spark_remote=cluster.remote, spark_shared_dir=data)
    peaks = Peaks()
    for proc in cluster.procs:
        peaks.watch(proc.pid)
    peaks.reset()  # their peaks while they answered queries are not the commits'
    services = build_services(settings)
    try:
        _hwm_reset()
        size.spark_commit_s = _commit_all(services, extracts)
        size.spark_commit_mib = _hwm_mib()
        files = [str(part) for e in services.ingest.visible_extracts("bank_alerts")
                 for part in parquet_parts(services.store.local_path(e.object_key))]
    finally:
        size.spark_commit_memory = peaks.stop()
        services.close()
    for path in extracts:
        path.unlink()
    print(f"{size.rows:,} rows committed on Spark in {size.spark_commit_s:.1f} s", flush=True)
    return files


@dataclass(frozen=True)
class Line:
    """time = fixed + rows x per_row, fitted over the sizes run."""

    fixed: float
    per_row: float

    @classmethod
    def fit(cls, rows: list[int], seconds: list[float]) -> Line:
        slope, intercept = statistics.linear_regression(rows, seconds)
        return cls(intercept, slope)

    def at(self, rows: float, speedup: float = 1.0) -> str:
        """The time for ``rows`` with the per-row cost divided by ``speedup``, in words."""
        if self.per_row <= 0:
            return "n/a (per-row cost not measured)"
        return _span(self.fixed + rows * self.per_row / speedup)


def _crossover(duck: Line, spark: Line) -> str:
    """Where Spark's fitted line falls below DuckDB's, in words."""
    if duck.per_row <= 0 or spark.per_row <= 0:
        return ("not measured: a fitted per-row cost is not positive (the per-row part is "
                "within the noise of the fixed cost at these sizes)")
    if spark.per_row == duck.per_row:
        return "never" if spark.fixed >= duck.fixed else "at every size"
    cross = (spark.fixed - duck.fixed) / (duck.per_row - spark.per_row)
    ratio = spark.per_row / duck.per_row if duck.per_row > 0 else float("inf")
    if spark.per_row > duck.per_row:
        if cross <= 0:
            return f"**never** (Spark's per-row cost is {ratio:.1f}x DuckDB's)"
        return f"below {cross:,.0f} rows only (per-row cost {ratio:.1f}x DuckDB's)"
    return "at every size" if cross <= 0 else f"above **{cross:,.0f}** rows"


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def report(sizes: list[Size], args: argparse.Namespace, minutes: float,
           loads: tuple[float, float]) -> str:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True,
                          check=False).stderr.splitlines()[0]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = os.cpu_count() or 1
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    out = [
        f"\n## engines, {dt.date.today().isoformat()}\n",
        f"`{command}` ({minutes:.1f} min in all). The DP query shapes of query_dp "
        f"({', '.join(f'{r.rows:,}' for r in sizes)} rows from 5 partners, ~rows/4 skewed "
        f"privacy units, 10 rows per unit, rho ~ 1) through `POST /v1/queries` to "
        "`tahub serve` (a process of its own), on DuckDB in the hub and on a standalone "
        f"Spark cluster on loopback (tests/sparkcluster.py: a master, {WORKERS} workers of 1 "
        "core, a Spark Connect server; the same committed files, read by path); median of "
        f"{args.repeat}, each a different cost. {cores} cores, {ram:.0f} GiB, Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}, PySpark "
        f"{pyspark.__version__}, {java}; load average {loads[0]:.1f} before, "
        f"{loads[1]:.1f} after. The DuckDB hub ran before the cluster was started.\n",
        "| rows | shape | DuckDB hub s | Spark hub s | Spark / DuckDB | exact unbounded "
        "DuckDB s | DuckDB hub / exact | Spark hub / exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        duck, spark = size.runs["duckdb"], size.runs["spark"]
        out.append(f"| {size.rows:,} | warm-up: Q2, computing the cut and dropped-row files "
                   "(Spark: also its first session) | "
                   f"{duck.warmup:.2f} | {spark.warmup:.2f} | "
                   f"{spark.warmup / duck.warmup:.1f}x | | | |")
        for shape, (what, *_) in SHAPES.items():
            d, s, e = duck.shapes[shape], spark.shapes[shape], size.exact[shape]
            out.append(f"| {size.rows:,} | {shape}: {what} | {d:.3f} | {s:.3f} | "
                       f"**{s / d:.1f}x** | {e:.3f} | {d / e:.2f}x | {s / e:.1f}x |")
    out += ["", "CPU the machine's other processes took while each hub answered (its share of "
            f"all {cores} cores; the machine is shared): " + "; ".join(
                f"{s.rows:,} rows: DuckDB {max(s.runs['duckdb'].others, 0):.0%}, Spark "
                f"{max(s.runs['spark'].others, 0):.0%}" for s in sizes) + "."]
    out += ["", "Commits of the same five extracts (time of all five; peak RSS of the "
            "committing hub process, and the sum of the cluster's processes' peaks while it "
            "committed on Spark; both committed copies compared per cell of Q2: rows, "
            "fixed-point sum of amount, units, largest sequence number):", "",
            "| rows | DuckDB in the hub s (s per million) | Spark s (s per million) | "
            "Spark / DuckDB | hub peak MiB, DuckDB / Spark | cluster peak MiB | same rows, "
            "sums, units and numbers |", "|---|---|---|---|---|---|---|"]
    for size in sizes:
        m = size.rows / 1e6
        cluster_mib = sum(x for ms in size.spark_commit_memory.values() for x in ms)
        out.append(f"| {size.rows:,} | {size.commit_s:.1f} ({size.commit_s / m:.2f}) | "
                   f"{size.spark_commit_s:.1f} ({size.spark_commit_s / m:.2f}) | "
                   f"**{size.spark_commit_s / size.commit_s:.1f}x** | {size.commit_mib:,} / "
                   f"{size.spark_commit_mib:,} | {cluster_mib:,} | "
                   f"{'yes' if size.same_exact else '**no**'} |")
    out += ["", "Starting the cluster: " + ", ".join(
        f"{s.cluster_start_s:.0f} s" for s in sizes) + ".", ""]
    kinds = list(dict.fromkeys([*HEAPS, *(k for s in sizes for k in s.memory)]))
    out += ["Peak RSS (VmHWM, sampled every second from /proc) of each process, MiB; "
            "several processes of a kind: each one's, largest first:", "",
            "| process | setting | " + " | ".join(f"{s.rows:,} rows" for s in sizes) + " |",
            "|---|---|" + "---|" * len(sizes)]
    for kind in kinds:
        cells = [", ".join(f"{m:,}" for m in s.memory.get(kind, [])) or "-" for s in sizes]
        out.append(f"| {kind} | {HEAPS.get(kind, '')} | " + " | ".join(cells) + " |")
    spark_total = [sum(m for k, ms in s.memory.items() if k not in HUB_KINDS.values()
                       for m in ms) for s in sizes]
    out += ["| all of Spark's processes | | " + " | ".join(f"**{t:,}**" for t in spark_total)
            + " |", ""]
    if len({s.rows for s in sizes}) < 2:
        return "\n".join(out) + "\n"
    rows = [s.rows for s in sizes]
    out += [
        "Fitted per engine over the sizes above (time = fixed + rows x per-row cost, from "
        f"the medians; {cores} cores, Spark's {WORKERS} one-core executors):", "",
        "| shape | DuckDB fixed s + s per 10M rows | Spark fixed s + s per 10M rows | "
        "Spark faster on this machine |", "|---|---|---|---|"]
    lines: dict[str, tuple[Line, Line]] = {}
    commits = (Line.fit(rows, [s.commit_s for s in sizes]),
               Line.fit(rows, [s.spark_commit_s for s in sizes]))
    out.append(f"| commit of five extracts | {commits[0].fixed:.2f} + "
               f"{commits[0].per_row * 1e7:.3f} | {commits[1].fixed:.2f} + "
               f"{commits[1].per_row * 1e7:.3f} | {_crossover(*commits)} |")
    for shape in SHAPES:
        fd = Line.fit(rows, [s.runs["duckdb"].shapes[shape] for s in sizes])
        fs = Line.fit(rows, [s.runs["spark"].shapes[shape] for s in sizes])
        lines[shape] = (fd, fs)
        out.append(f"| {shape} | {fd.fixed:.2f} + {fd.per_row * 1e7:.3f} | "
                   f"{fs.fixed:.2f} + {fs.per_row * 1e7:.3f} | "
                   f"{_crossover(fd, fs)} |")
    c = args.cores_per_worker
    out += ["", f"Paper estimate for {PAPER_ROWS:,} rows (10 billion), from the fitted "
            f"lines. Assumed: Spark's per-row cost divides by the cluster's cores "
            f"(measured on {WORKERS}; workers of {c} cores each), its fixed cost stays, "
            "shuffles, the driver, the network and stragglers are ignored; DuckDB's per-row "
            f"cost stays linear on one node (measured on {cores} cores; on {c} cores divided "
            f"by {c / cores:g} under the same assumption). DuckDB's node needs about "
            f"{PAPER_ROWS * BYTES_PER_ROW / 1e9:,.0f} GB of disk for the extracts "
            f"({BYTES_PER_ROW} bytes per committed row, docs/production.md); the Spark "
            "cluster reads the same files from shared storage.", "",
            f"| shape | DuckDB, 1 node of {cores} cores | DuckDB, 1 node of {c} cores | "
            + " | ".join(f"Spark, {n} workers x {c} cores" for n in PAPER_WORKERS) + " |",
            "|---|---|---|" + "---|" * len(PAPER_WORKERS)]
    for shape, (fd, fs) in [("commit of five extracts", commits), *lines.items()]:
        out.append(f"| {shape} | {fd.at(PAPER_ROWS)} | "
                   f"{fd.at(PAPER_ROWS, c / cores)} | " + " | ".join(
                       fs.at(PAPER_ROWS, n * c / WORKERS) for n in PAPER_WORKERS)
                   + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores-per-worker", type=int, default=8,
                        help="the paper estimate's Spark workers (and DuckDB node)")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    args = parser.parse_args()
    started, load = time.perf_counter(), os.getloadavg()[0]
    asked = itertools.count()  # every query's cost is different: no release is reused
    sizes = [measure(rows, args.repeat, asked) for rows in args.rows]
    text = report(sizes, args, (time.perf_counter() - started) / 60,
                  (load, os.getloadavg()[0]))
    print(text)
    if not args.no_record:
        with args.results.open("a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
