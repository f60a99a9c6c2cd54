"""A real Apache Spark standalone cluster on loopback, for the Spark engine's tests.

Started from the PySpark package's own scripts (``bin/spark-class``, ``bin/spark-submit``)
with the machine's Java (Debian's, installed by ``./dev setup`` and ``.ci/run``; nothing is
downloaded): a master, two workers of one core each, and a Spark Connect server (the jar is
in PySpark's ``jars/``) that runs its driver against the master. The hub reaches it as
``TAHUB_SPARK_REMOTE=sc://127.0.0.1:<port>``. Storage is the local folders the tests use
(every process runs on this machine, so a ``file://`` path is the same for all of them), or
an S3 bucket on a moto server (``tests/s3server.py``) read through Hadoop's S3A connector:
its jars (:data:`S3A_JARS`, fetched by ``./dev setup`` from tests/s3a-jars.txt) are on the
Connect server's classpath and shipped to the executors.

Registered as a pytest plugin by ``tests/conftest.py``: ``spark_cluster`` (module) starts
one cluster for a test module and stops it (and every process it started) when the module
ends, so that its JVMs do not stay up beside the rest of the suite.
Its logs are under the cluster's folder and printed when a start fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["SparkCluster", "spark_cluster"]

START_TIMEOUT = 120.0
WORKERS = 2
#: Hadoop's S3A connector: hadoop-aws and the AWS SDK it was built against.
S3A_JARS = [Path(sys.prefix) / "share" / "tahub" / "spark-jars" / name
            for name in ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")]
# hadoop-aws 3.3.1 reads these as plain numbers, and PySpark's Hadoop 3.4 defaults write
# them with units ("60s"): the 3.4 defaults, as numbers (a cluster built with the
# hadoop-aws of its own Hadoop needs none of this: docs/production.md, "Apache Spark").
_S3A_NUMBERS = {"threads.keepalivetime": "60", "connection.establish.timeout": "30000",
                "connection.timeout": "200000", "multipart.purge.age": "86400"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java_home() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("the Spark tests need Java 17 or newer on PATH: ./dev setup "
                           "installs Debian's openjdk-17-jre-headless")
    return str(Path(java).resolve().parents[1])


def _s3a_arguments() -> list[str]:
    """The S3A connector's jars and settings, for the Connect server (and its executors)."""
    missing = [str(j) for j in S3A_JARS if not j.is_file()]
    if missing:
        raise RuntimeError(f"the Spark tests need Hadoop's S3A connector ({', '.join(missing)}"
                           " missing): run ./dev setup")
    numbers = (f"spark.hadoop.fs.s3a.{k}={v}" for k, v in _S3A_NUMBERS.items())
    return ["--jars", ",".join(map(str, S3A_JARS)),
            *(arg for n in numbers for arg in ("--conf", n))]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class SparkCluster:
    """A master, ``WORKERS`` workers and a Spark Connect server on 127.0.0.1."""

    folder: Path
    master_port: int = field(default_factory=_free_port)
    master_ui: int = field(default_factory=_free_port)
    connect_port: int = field(default_factory=_free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def remote(self) -> str:
        return f"sc://127.0.0.1:{self.connect_port}"

    def start(self) -> None:
        import pyspark

        home = Path(pyspark.__file__).parent
        env = {**os.environ, "SPARK_HOME": str(home), "JAVA_HOME": _java_home(),
               "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.folder / "logs"),
               "SPARK_WORKER_DIR": str(self.folder / "work"), "SPARK_NO_DAEMONIZE": "1"}
        daemon = {**env, "SPARK_DAEMON_MEMORY": "256m"}  # the master's and workers' own JVMs
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        self._spawn("master", daemon, [str(home / "bin" / "spark-class"),
                                    "org.apache.spark.deploy.master.Master", "--host",
                                    "127.0.0.1", "--port", str(self.master_port),
                                    "--webui-port", str(self.master_ui)])
        self._wait(lambda: _listening(self.master_port), "the master")
        for i in range(WORKERS):
            self._spawn(f"worker{i}", daemon, [
                str(home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                self.master_url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                "--webui-port", str(_free_port()), "--work-dir", str(self.folder / "work")])
        self._wait(lambda: self._alive_workers() == WORKERS, f"{WORKERS} workers")
        self._spawn("connect", env, [
            str(home / "bin" / "spark-submit"), "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master", self.master_url, "--driver-memory", "768m",
            "--conf", f"spark.connect.grpc.binding.port={self.connect_port}",
            "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf", "spark.driver.host=127.0.0.1",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.executor.memory=640m", "--conf", "spark.executor.cores=1",
            "--conf", f"spark.cores.max={WORKERS}",
            # small test data: a few partitions, not the 200 of a big shuffle
            "--conf", "spark.sql.shuffle.partitions=4",
            # a cancelled task that does not stop by itself takes its executor with it
            # (docs/production.md, "Apache Spark": what a cluster for tahub sets)
            "--conf", "spark.task.reaper.enabled=true",
            "--conf", "spark.task.reaper.killTimeout=10s",
            "--conf", f"spark.local.dir={self.folder / 'local'}",
            *_s3a_arguments()])
        self._wait(lambda: _listening(self.connect_port), "the Spark Connect server")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def _spawn(self, name: str, env: dict[str, str], argv: list[str]) -> None:
        with (self.folder / "logs" / f"{name}.out").open("ab") as out:
            self.procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                               stdout=out, stderr=subprocess.STDOUT,
                                               cwd=self.folder))

    def _alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui}/json/",
                                        timeout=2) as resp:
                return int(json.load(resp).get("aliveworkers", 0))
        except OSError:
            return 0

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            if ready():
                return
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((self.folder / "logs").glob("*.out")))
        self.stop()
        raise RuntimeError(f"the Spark cluster did not start ({what}):\n{logs}")


@pytest.fixture(scope="module")
def spark_cluster() -> Iterator[SparkCluster]:
    folder = Path(tempfile.mkdtemp(prefix="tahub-spark-"))
    cluster = SparkCluster(folder)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
