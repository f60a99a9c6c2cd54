"""The ``tahub`` CLI, run with typer's CliRunner against a real SQLite file in tmp_path."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.cli.reference import settings_markdown
from hub.contracts.model import json_schema_text

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
SECRET_RE = re.compile(r"client secret\s+(\S{43})")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TAHUB_DATA_DIR": str(tmp_path / "data"), "TAHUB_LOG_LEVEL": "WARNING"}


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_member_add_prints_the_secret_once_and_list_never(env: dict[str, str]) -> None:
    code, out, _ = _run(
        env, "admin", "member", "add", "Example Bank", "--kind", "bank",
        "--role", "partner", "--role", "analyst",
    )
    assert code == 0
    secret = SECRET_RE.search(out)
    assert secret is not None and "shown only this once" in out
    client_id = re.search(r"tahub_[0-9a-f]{16}", out)
    org_id = re.search(r"org_[0-9a-f]{16}", out)
    assert client_id is not None and org_id is not None
    db = (Path(env["TAHUB_DATA_DIR"]) / "tahub.db").read_bytes()
    assert secret.group(1).encode() not in db  # only the argon2 hash is stored
    assert b"$argon2id$" in db

    code, out, _ = _run(env, "admin", "member", "list")
    assert code == 0
    assert "Example Bank" in out and client_id.group(0) in out and org_id.group(0) in out
    assert "analyst, partner" in out and "active" in out
    assert secret.group(1) not in out and "argon2" not in out


def test_client_add_and_revoke(env: dict[str, str]) -> None:
    _, out, _ = _run(env, "admin", "member", "add", "Relief NGO", "--kind", "ngo",
                     "--role", "partner")
    org_id = re.search(r"org_[0-9a-f]{16}", out)
    assert org_id is not None
    code, out, _ = _run(env, "admin", "client", "add", org_id.group(0), "--role", "analyst")
    assert code == 0 and SECRET_RE.search(out) is not None
    second = re.search(r"tahub_[0-9a-f]{16}", out)
    assert second is not None
    code, out, _ = _run(env, "admin", "client", "revoke", second.group(0))
    assert (code, out.strip()) == (0, f"client {second.group(0)} revoked")
    _, listed, _ = _run(env, "admin", "member", "list")
    assert "revoked" in listed and "active" in listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("admin", "client", "revoke", "tahub_nope"), "no client 'tahub_nope'"),
        (("admin", "client", "add", "org_nope", "--role", "partner"), "no member organisation"),
        (("admin", "member", "add", "   ", "--kind", "bank", "--role", "partner"),
         "a member name needs"),
    ],
)
def test_user_errors_exit_1_with_the_message_and_no_traceback(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(env, *args)
    assert code == 1
    assert message in err and "Traceback" not in err + out


def test_a_taken_member_name_is_refused(env: dict[str, str]) -> None:
    add = ("admin", "member", "add", "Twin Bank", "--kind", "bank", "--role", "partner")
    assert _run(env, *add)[0] == 0
    code, _, err = _run(env, *add)
    assert code == 1 and "already exists" in err


def test_a_bad_setting_names_its_variable(env: dict[str, str]) -> None:
    code, _, err = _run({**env, "TAHUB_PORT": "eighty"}, "admin", "member", "list")
    assert code == 1 and "TAHUB_PORT" in err and "Traceback" not in err


def test_migrate_and_sweep(env: dict[str, str]) -> None:
    code, out, _ = _run(env, "admin", "migrate")
    assert code == 0 and "latest schema" in out
    assert (Path(env["TAHUB_DATA_DIR"]) / "tahub.db").is_file()
    code, out, _ = _run(env, "admin", "sweep")
    assert code == 0 and "expired uploads: 0" in out


def test_contracts_list(env: dict[str, str]) -> None:
    code, out, _ = _run(env, "contracts", "list")
    assert code == 0
    for dataset in ("bank_alerts", "case_records", "corridor_flows"):
        assert dataset in out


@pytest.mark.parametrize("kind", ["contract", "domain"])
def test_committed_schema_files_equal_the_cli_output(env: dict[str, str], kind: str) -> None:
    code, out, _ = _run(env, "contracts", "schema", "--kind", kind)
    assert code == 0
    assert out == json_schema_text(kind)
    assert (ROOT / "contracts" / f"{kind}.schema.json").read_text() == out


def test_schema_out_writes_the_file(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert _run(env, "contracts", "schema", "--out", str(target))[0] == 0
    assert target.read_text() == json_schema_text("contract")


def test_contracts_check_passes_shipped_files_and_reports_file_lines(
    env: dict[str, str], tmp_path: Path
) -> None:
    shipped = sorted(str(p) for p in (ROOT / "contracts").glob("*.yaml"))
    code, out, _ = _run(env, "contracts", "check", *shipped)
    assert code == 0 and out.count("ok: ") == len(shipped)

    broken = tmp_path / "bank_alerts.v1.yaml"
    text = (ROOT / "contracts" / "bank_alerts.v1.yaml").read_text()
    assert "    type: category\n" in text
    broken.write_text(text.replace("    type: category\n", "    type: free_text\n", 1))
    lines = broken.read_text().splitlines()
    bad_line = next(i for i, line in enumerate(lines, 1) if "free_text" in line)
    misnamed = tmp_path / "bank_alerts.v7.yaml"
    shutil.copy(ROOT / "contracts" / "bank_alerts.v1.yaml", misnamed)

    code, out, err = _run(env, "contracts", "check", str(broken), str(misnamed))
    assert code == 1
    assert f"{broken}:{bad_line}: fields.1.type: free text is never accepted" in err
    assert f"{misnamed}:1: declares bank_alerts v1" in err
    assert "Traceback" not in err


def test_settings_doc_is_generated_and_committed(env: dict[str, str]) -> None:
    code, out, _ = _run(env, "admin", "settings-doc")
    assert code == 0 and out == settings_markdown()
    assert (ROOT / "docs" / "settings.md").read_text() == settings_markdown()
    from hub.settings import Settings

    for name in Settings.model_fields:
        assert f"`TAHUB_{name.upper()}`" in out


def test_commands_are_registered() -> None:
    result = runner.invoke(app, ["--help"])
    for command in ("serve", "admin", "contracts", "demo"):
        assert command in result.stdout
    serve = runner.invoke(app, ["serve", "--help"])
    assert "--host" in serve.stdout and "--port" in serve.stdout


def test_importing_the_app_and_cli_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import hub.api.app, hub.cli.main, hub.identity.service, hub.logging, hub.cli.reference\n"
        "import structlog, logging\n"
        "assert not logging.getLogger().handlers, 'logging configured at import'\n"
    )
    data_dir = tmp_path / "untouched"
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=tmp_path,
        env={"TAHUB_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
    )
    assert not data_dir.exists() and not (tmp_path / "tahub-data").exists()


def test_serve_runs_the_hub_on_the_given_port(tmp_path: Path) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env={"TAHUB_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin",
             "TAHUB_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "tahub serve did not come up"
                time.sleep(0.1)
        assert resp.json()["status"] == "ok"
        config = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration").json()
        assert config["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def test_serve_refuses_bad_configuration_before_listening(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = _run(
        {**env, "TAHUB_CONTRACTS_DIR": str(tmp_path / "missing")}, "serve", "--port", "1"
    )
    assert code == 1 and "contracts folder" in err and "Traceback" not in err + out


def test_member_limits_show_set_and_reset(env: dict[str, str]) -> None:
    code, out, _ = _run(env, "admin", "member", "add", "Large Bank", "--kind", "bank",
                        "--role", "partner")
    org = re.search(r"org_[0-9a-f]+", out)
    assert code == 0 and org is not None
    code, out, _ = _run(env, "admin", "member", "limits", org.group(0))
    assert code == 0 and "100,000,000" in out and "TAHUB_MAX_EXTRACT_ROWS" in out
    code, out, _ = _run(env, "admin", "member", "limits", org.group(0), "--max-rows",
                        "300000000", "--max-ratio", "400")
    assert code == 0 and "300,000,000" in out and out.count("this member") == 2
    code, out, err = _run(env, "admin", "member", "limits", org.group(0), "--reset",
                          "--max-rows", "5")
    assert code != 0 and "--reset" in err + out
    code, out, _ = _run(env, "admin", "member", "limits", org.group(0), "--reset")
    assert code == 0 and "this member" not in out
    code, _, err = _run(env, "admin", "member", "limits", "org_nope", "--max-rows", "5")
    assert code == 1 and "no member organisation" in err
