"""tahub-connect through typer's CliRunner: real files, exit codes, no tracebacks."""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import connectors.partner.cli as cli
from connectors.partner.client import HubClient, RetryPolicy
from connectors.partner.mapping import parse_mapping
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry
from tests.connectors.conftest import FLOWS_HEADER, FLOWS_MAPPING, KEY, good_flow, write_csv
from tests.connectors.fakehub import CLIENT_ID, CLIENT_SECRET, FakeHub

NO_HUB = {"TAHUB_HUB_URL": None, "TAHUB_CLIENT_ID": None, "TAHUB_CLIENT_SECRET": None}
BASE_ENV = {
    "TAHUB_NETWORK_KEY": KEY.export(),
    "TAHUB_NETWORK_KEY_FILE": None,
    "COLUMNS": "200",
    **NO_HUB,
}


def _run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli.app, list(args), env={**BASE_ENV, **(env or {})})


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, Path]:
    rows = [good_flow(i) for i in range(20)] + [[*good_flow(99)[:4], "2024-13", "2", "5", "x"]]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    mapping = tmp_path / "flows.yaml"
    mapping.write_text(FLOWS_MAPPING)
    return source, mapping


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """Point the CLI's client at a fake hub; credentials still come from options/env."""
    fake = FakeHub(chunk_bytes=4096)

    class Client(HubClient):
        @classmethod
        def from_env(cls, *args: Any, **kwargs: Any) -> HubClient:
            return HubClient.from_env(
                *args,
                transport=fake.transport(),
                retry=RetryPolicy(attempts=3, initial_wait=0, max_wait=0),
                **kwargs,
            )

    monkeypatch.setattr(cli, "HubClient", Client)
    return fake


HUB_ENV = {
    "TAHUB_HUB_URL": "https://hub.test",
    "TAHUB_CLIENT_ID": CLIENT_ID,
    "TAHUB_CLIENT_SECRET": CLIENT_SECRET,
}


def test_validate_writes_extract_and_rejects_and_prints_the_report(
    tmp_path: Path, export: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, mapping = export
    monkeypatch.chdir(tmp_path)
    result = _run("validate", str(source), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Validation report: corridor_flows v1" in out
    assert "rows read" in out and "21" in out and "1 (4.8%)" in out
    assert KEY.key_id in out and "Dry run: nothing was uploaded." in out
    assert "period" in out and "not a month ('YYYY-MM') or a date" in out
    assert "customer_name" in out and "its name suggests an identifier" in out
    assert (tmp_path / "corridor_flows.v1.parquet").is_file()
    assert (tmp_path / "corridor_flows.v1.rejects.csv").read_text().count("\n") == 2


def test_push_dry_run_needs_no_credentials(tmp_path: Path, export: tuple[Path, Path]) -> None:
    source, mapping = export
    out = tmp_path / "o" / "x.parquet"
    result = _run(
        "push",
        str(source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(out),
        "--rejects",
        str(tmp_path / "r.csv"),
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "r.csv").is_file()


def test_push_without_credentials_stops_before_any_work(
    tmp_path: Path, export: tuple[Path, Path]
) -> None:
    source, mapping = export
    out = tmp_path / "x.parquet"
    result = _run("push", str(source), "-m", str(mapping), "--out", str(out))
    assert result.exit_code == 2
    assert "TAHUB_HUB_URL, TAHUB_CLIENT_ID, TAHUB_CLIENT_SECRET" in result.stderr
    assert not out.exists()


def test_push_uploads_and_a_second_push_is_a_duplicate(
    tmp_path: Path, export: tuple[Path, Path], hub: FakeHub
) -> None:
    source, mapping = export
    args = ["push", str(source), "-m", str(mapping), "--out", str(tmp_path / "x.parquet")]
    first = _run(*args, env=HUB_ENV)
    assert first.exit_code == 0, first.output
    assert "Uploaded extract ext_" in first.stdout and "20 rows" in first.stdout
    (extract,) = hub.extracts.values()
    assert extract["_bytes"] == (tmp_path / "x.parquet").read_bytes()
    second = _run(*args, env=HUB_ENV)
    assert second.exit_code == 0
    assert f"The hub already has this extract: {extract['id']}" in second.stdout
    assert len(hub.extracts) == 1


def test_push_with_wrong_secret_is_refused_before_the_work(
    tmp_path: Path, export: tuple[Path, Path], hub: FakeHub
) -> None:
    source, mapping = export
    out = tmp_path / "x.parquet"
    result = _run(
        "push",
        str(source),
        "-m",
        str(mapping),
        "--out",
        str(out),
        "--client-secret",
        "nope",
        env=HUB_ENV,
    )
    assert result.exit_code == 1
    assert "refused the credentials" in result.stderr and not out.exists()


def test_unreachable_hub_exits_1(tmp_path: Path, export: tuple[Path, Path], hub: FakeHub) -> None:
    hub.fail("POST", "/oauth/token", "connect", times=10)
    result = _run("list", env=HUB_ENV)
    assert result.exit_code == 1 and "did not answer" in result.stderr


def test_validation_refusal_exits_1_without_traceback(
    tmp_path: Path, export: tuple[Path, Path]
) -> None:
    source, mapping = export
    result = _run(
        "validate",
        str(source),
        "-m",
        str(mapping),
        "--out",
        str(tmp_path / "x.parquet"),
        "--max-reject-ratio",
        "0.01",
    )
    assert result.exit_code == 1
    assert "more than the 1.0% allowed" in result.stderr
    assert "row 21, period" in result.stderr
    assert "Traceback" not in result.output


def test_bad_mapping_exits_2_with_its_line(tmp_path: Path, export: tuple[Path, Path]) -> None:
    source, mapping = export
    mapping.write_text(FLOWS_MAPPING + "  partner: bank\n")
    result = _run("validate", str(source), "-m", str(mapping))
    assert result.exit_code == 2
    assert "line 13, fields.partner" in result.stderr and "stamped by the hub" in result.stderr


def test_missing_key_exits_2(tmp_path: Path, export: tuple[Path, Path]) -> None:
    source, mapping = export
    result = _run("validate", str(source), "-m", str(mapping), env={"TAHUB_NETWORK_KEY": None})
    assert result.exit_code == 2 and "no network key" in result.stderr


def test_bad_ratio_is_a_usage_error(export: tuple[Path, Path]) -> None:
    source, mapping = export
    result = _run("validate", str(source), "-m", str(mapping), "--max-reject-ratio", "1.5")
    assert result.exit_code == 2


def test_key_new_and_key_id(tmp_path: Path) -> None:
    path = tmp_path / "network.key"
    made = _run("key", "new", "--out", str(path))
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = NetworkKey.from_file(path)
    assert key.key_id in made.stdout and key.export() not in made.output
    shown = _run("key", "id", "--key-file", str(path), env={"TAHUB_NETWORK_KEY": None})
    assert shown.exit_code == 0 and shown.stdout.strip() == key.key_id
    assert _run("key", "id").stdout.strip() == KEY.key_id  # from TAHUB_NETWORK_KEY
    again = _run("key", "new", "--out", str(path))
    assert again.exit_code == 2 and "never overwritten" in again.stderr


def test_mapping_template_and_check(tmp_path: Path, registry: ContractRegistry) -> None:
    shown = _run("mapping", "template", "--dataset", "case_records")
    assert shown.exit_code == 0
    mapping = parse_mapping(shown.stdout, registry)
    assert (mapping.dataset, mapping.contract_version) == ("case_records", 2)
    out = tmp_path / "m.yaml"
    assert (
        _run(
            "mapping", "template", "--dataset", "case_records", "--version", "1", "--out", str(out)
        ).exit_code
        == 0
    )
    checked = _run("mapping", "check", str(out))
    assert checked.exit_code == 0 and "OK (case_records v1, 10 fields mapped)" in checked.stdout
    unknown = _run("mapping", "template", "--dataset", "shoe_sizes")
    assert unknown.exit_code == 2 and "unknown dataset 'shoe_sizes'" in unknown.stderr
    assert (
        _run("mapping", "template", "--dataset", "case_records", "--out", str(out)).exit_code == 2
    )


def test_list_withdraw_and_contracts(
    tmp_path: Path, export: tuple[Path, Path], hub: FakeHub
) -> None:
    source, mapping = export
    pushed = _run(
        "push", str(source), "-m", str(mapping), "--out", str(tmp_path / "x.parquet"), env=HUB_ENV
    )
    assert pushed.exit_code == 0, pushed.output
    (extract_id,) = hub.extracts
    listed = _run("list", "--json", env=HUB_ENV)
    assert listed.exit_code == 0
    assert [e["id"] for e in json.loads(listed.stdout)] == [extract_id]
    table = _run("list", "--dataset", "corridor_flows", env=HUB_ENV)
    assert extract_id in table.stdout and KEY.key_id in table.stdout
    gone = _run("withdraw", extract_id, env=HUB_ENV)
    assert gone.exit_code == 0 and f"Withdrawn {extract_id}" in gone.stdout
    assert json.loads(_run("list", "--json", env=HUB_ENV).stdout) == []
    missing = _run("withdraw", "ext_nope", env=HUB_ENV)
    assert missing.exit_code == 1 and "404 not_found" in missing.stderr
    remote = _run("contracts", env=HUB_ENV)
    assert remote.exit_code == 0 and "corridor_flows" in remote.stdout
    local = _run("contracts", "--local")
    assert local.exit_code == 0 and "Trafficking case records" in local.stdout


def test_version_and_help() -> None:
    assert _run("--version").stdout.strip() == f"tahub-connect {cli.__version__}"
    shown = _run("push", "--help")
    assert shown.exit_code == 0 and "--max-reject-ratio" in shown.stdout


def test_a_file_that_stops_uploads_nothing(tmp_path: Path, hub: FakeHub) -> None:
    rows = [good_flow(i) for i in range(20)] + [[*good_flow(i), "extra"] for i in range(3)]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    mapping = tmp_path / "flows.yaml"
    mapping.write_text(FLOWS_MAPPING)
    out = tmp_path / "x.parquet"
    stopped = _run("push", str(source), "-m", str(mapping), "--out", str(out), env=HUB_ENV)
    assert stopped.exit_code == 1
    said = " ".join(stopped.stderr.split())
    assert "3 of 23 rows (13.0%) were rejected, more than the 5.0% allowed" in said
    assert "line 22, row 21: the line has 9 fields where the header has 8" in said
    assert hub.extracts == {} and not out.exists()
    assert (tmp_path / "x.rejects.csv").read_text().splitlines()[1].startswith("21,22,,")
    # The mapping's own threshold, or the command line's, lets it through.
    mapping.write_text(FLOWS_MAPPING + "max_reject_ratio: 15%\n")
    pushed = _run("push", str(source), "-m", str(mapping), "--out", str(out), env=HUB_ENV)
    assert pushed.exit_code == 0, pushed.output
    assert "20 rows" in pushed.stdout and len(hub.extracts) == 1
    again = _run("validate", str(source), "-m", str(mapping), "--out", str(out),
                 "--max-reject-ratio", "0.1")  # fmt: skip
    assert again.exit_code == 1
