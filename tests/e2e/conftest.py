"""End-to-end fixtures: the real ``tahub`` hub process on a loopback port, driven by the real CLIs.

Nothing is imported from the hub here on purpose: the tests see the hub only through HTTP,
the two console scripts and the files the hub leaves in its data folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: list[str], env: dict[str, str], *, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Hub:
    data_dir: Path
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    members: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "tahub"), "serve"], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"hub did not come up:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def add_member(self, name: str, kind: str = "bank") -> dict[str, str]:
        out = run([str(BIN / "tahub"), "admin", "member", "add", name, "--kind", kind,
                   "--role", "partner", "--json"], self.env)
        assert out.returncode == 0, out.stderr
        creds: dict[str, str] = json.loads(out.stdout)
        self.members[name] = creds
        return creds

    def partner_env(self, creds: dict[str, str], key_file: Path) -> dict[str, str]:
        return {**self.env, "TAHUB_HUB_URL": self.url, "TAHUB_CLIENT_ID": creds["client_id"],
                "TAHUB_CLIENT_SECRET": creds["client_secret"],
                "TAHUB_NETWORK_KEY_FILE": str(key_file)}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAHUB_")}
    port = free_port()
    env.update(TAHUB_DATA_DIR=str(tmp_path / "hub-data"), TAHUB_PORT=str(port),
               TAHUB_CHUNK_BYTES=str(64 * 1024), TAHUB_LOG_JSON="true",
               COLUMNS="250")  # rich tables: no wrapped ids
    h = Hub(tmp_path / "hub-data", port, env, tmp_path / "hub.log")
    h.start()
    yield h
    h.stop()


@pytest.fixture
def network_key(tmp_path: Path, hub: Hub) -> Path:
    key = tmp_path / "partners" / "network.key"
    key.parent.mkdir()
    out = run([str(BIN / "tahub-connect"), "key", "new", "--out", str(key)], hub.env)
    assert out.returncode == 0, out.stderr
    return key
