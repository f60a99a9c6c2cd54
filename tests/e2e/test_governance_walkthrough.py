"""The README's governance-officer walkthrough, run as written on the demo: `tahub demo`, then
`tahub serve` on its data, then every command of the walkthrough's shell blocks in bash."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BIN, Deployment, Hub, clean_env, free_port, run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _walkthrough_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walkthrough: governance officer", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "the walkthrough has two shell blocks: proposer, then reviewer"
    proposer, reviewer = (b.replace(".venv/bin/", f"{BIN}/") for b in blocks)
    assert f"source {BIN}/activate" in proposer  # once per terminal: tahub on PATH
    return [proposer, f"source {BIN}/activate\n{reviewer}"]  # the reviewer's terminal too


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_readme_governance_walkthrough_runs_on_the_demo(tmp_path: Path) -> None:
    env = clean_env()
    port = free_port()
    env.update(TAHUB_PORT=str(port), COLUMNS="200", TAHUB_LOG_LEVEL="WARNING")
    demo = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=tmp_path, timeout=300)
    assert demo.returncode == 0, demo.stderr + demo.stdout
    assert "governance.env" in demo.stdout

    data = tmp_path / "tahub-data"
    hub = Hub(data, port, {**env, "TAHUB_DATA_DIR": str(data)}, tmp_path / "hub.log",
              Deployment("embedded", {}))
    hub.start()
    try:
        proposer, reviewer = _walkthrough_blocks()
        first = _bash(proposer, tmp_path, env)
        # every step works but the last, which the four-eyes rule refuses
        assert "rule: four-eyes:own-proposal" in first.stderr, first.stdout + first.stderr
        assert first.returncode == 1
        assert first.stderr.count("error:") == 1, first.stderr
        assert "proposed: my-policies/bank_alerts.yaml -> bank_alerts version 2" in first.stdout
        assert "unchanged: my-policies/case_records.yaml" in first.stdout
        assert "budget.per_member" not in first.stderr

        second = _bash(reviewer, tmp_path, env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert '+  per_member: "8"' in second.stdout  # the demo's 6 (hub/demo/budgets.py)
        assert "per_member: rho 6 -> rho 8" in second.stdout
        assert "bank_alerts version 2" in second.stdout and ": active" in second.stdout
        assert "bank_alerts version 3" in second.stdout  # the restore, pending review

        gov = dict(line.split("=", 1) for line in
                   (tmp_path / "tahub-demo-partners" / "metpolice" / "governance.env")
                   .read_text().splitlines() if "=" in line and not line.startswith("#"))
        analyst = dict(line.split("=", 1) for line in
                       (tmp_path / "tahub-demo-partners" / "northbank" / "analyst.env")
                       .read_text().splitlines() if "=" in line and not line.startswith("#"))
        for creds, path in ((analyst, "/v1/budgets/bank_alerts"), (gov, "/v1/audit")):
            token = httpx.post(hub.url + "/oauth/token", data={"grant_type":
                                                              "client_credentials"},
                               auth=(creds["TAHUB_CLIENT_ID"], creds["TAHUB_CLIENT_SECRET"]),
                               timeout=30).json()["access_token"]
            params = {"action": "budget.changed"} if path == "/v1/audit" else None
            body = httpx.get(hub.url + path, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {token}"}).json()
            if path == "/v1/audit":
                (entry,) = body["entries"]
                assert entry["details"]["after"]["per_member"] == "8"
            else:
                assert body["member"]["left"] == "8"  # the analyst may now spend more
    finally:
        hub.stop()
