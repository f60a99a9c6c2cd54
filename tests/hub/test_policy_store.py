"""The policy store on real files: a refused file never replaces the active policy, fixed
files are picked up, the watcher thread reloads, /health shows the errors, the CLI checks."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.contracts import ContractRegistry
from hub.errors import ConfigError
from hub.policies import default_policies_dir, policy_schema_text
from hub.policystore import PolicyStore
from tests.api.conftest import running_hub

SHIPPED = default_policies_dir()
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "policies"
    out.mkdir()
    for path in SHIPPED.glob("*.yaml"):
        shutil.copy(path, out / path.name)
    shutil.copy(SHIPPED / "README.md", out / "README.md")  # not a policy: ignored
    return out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    # a second write within the file system's timestamp granularity must still be seen
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_a_refused_file_keeps_the_previous_policy_and_a_fixed_one_replaces_it(
    folder: Path, registry: ContractRegistry
) -> None:
    store = PolicyStore.load(folder, registry)
    before = store.current()
    assert before.datasets() == ["bank_alerts", "case_records", "corridor_flows"]
    old_policy = before.get("bank_alerts")
    assert old_policy is not None and old_policy.budget.per_query == Fraction(1, 5)

    path = folder / "bank_alerts.yaml"
    _edit(path, "max_dimensions: 2", "max_dimensions: 0")
    assert store.reload() is True
    broken = store.current()
    assert broken.get("bank_alerts") is old_policy  # still active, unchanged
    assert broken.health()["status"] == "errors"
    (problem,) = broken.problems
    assert problem.file == "bank_alerts.yaml" and problem.field == "rules.0.max_dimensions"
    line = path.read_text().splitlines()[problem.line - 1]  # type: ignore[operator]
    assert "max_dimensions: 0" in line
    assert before.get("bank_alerts") is old_policy and before.problems == ()  # snapshots

    _edit(path, "max_dimensions: 0", "max_dimensions: 1")
    _edit(path, 'per_query: "1/5"', 'per_query: "1/10"')
    assert store.reload() is True
    fixed = store.current()
    assert fixed.problems == () and fixed.health()["status"] == "ok"
    new_policy = fixed.get("bank_alerts")
    assert new_policy is not None and new_policy.budget.per_query == Fraction(1, 10)
    assert new_policy.rules[0].max_dimensions == 1


def test_at_first_load_an_invalid_file_means_no_policy(
    folder: Path, registry: ContractRegistry
) -> None:
    _edit(folder / "case_records.yaml", "accounting: pure", "accounting: renyi")
    (folder / "extra.yaml").write_text("dataset: [unclosed\n")
    policies = PolicyStore.load(folder, registry).current()
    assert policies.datasets() == ["bank_alerts", "corridor_flows"]  # case_records: deny
    health = policies.health()
    assert health["status"] == "errors"
    by_file = {e["file"]: e for e in health["errors"]}
    assert by_file["case_records.yaml"]["field"] == "accounting"
    assert by_file["case_records.yaml"]["line"] == 7
    assert by_file["extra.yaml"]["line"] == 2 and "expected" in by_file["extra.yaml"]["reason"]


def test_unchanged_files_are_not_revalidated_and_deleted_ones_are_removed(
    folder: Path, registry: ContractRegistry
) -> None:
    store = PolicyStore.load(folder, registry)
    first = store.current()
    assert store.reload() is False and store.current() is first
    path = folder / "corridor_flows.yaml"
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 5_000_000))  # touched, same content
    assert store.reload() is False and store.current() is first
    path.unlink()
    assert store.reload() is True
    assert store.current().get("corridor_flows") is None  # deny
    (folder / "wrong_name.yaml").write_text((folder / "bank_alerts.yaml").read_text())
    assert store.reload() is True
    (problem,) = store.current().problems
    assert problem.file == "wrong_name.yaml" and "must be in bank_alerts.yaml" in problem.reason


def test_a_missing_folder_is_a_config_error(tmp_path: Path, registry: ContractRegistry) -> None:
    with pytest.raises(ConfigError, match="does not exist") as err:
        PolicyStore.load(tmp_path / "nope", registry)
    assert err.value.field == "TAHUB_POLICIES_DIR"


def test_the_watcher_thread_reloads_changed_files(
    folder: Path, registry: ContractRegistry
) -> None:
    others = set(threading.enumerate())  # e.g. the watcher of a session-wide test hub
    store = PolicyStore.load(folder, registry)
    store.start_watching(interval=0.05)
    try:
        (mine,) = set(threading.enumerate()) - others
        assert mine.daemon and mine.name == "tahub-policy-watcher"
        _edit(folder / "bank_alerts.yaml", "min_partners: 2", "min_partners: 3")
        _wait_for(lambda: getattr(store.current().get("bank_alerts"), "min_partners", 0) == 3)
    finally:
        store.stop_watching()
    assert not mine.is_alive()


def test_health_shows_policy_errors_and_recovers_through_the_real_app(
    folder: Path, tmp_path: Path
) -> None:
    _edit(folder / "bank_alerts.yaml", "per_member: \"1\"", "per_member: \"9\"")
    with running_hub(tmp_path / "data", policies_dir=folder) as hub:
        body = httpx.get(hub.url + "/health", timeout=10).json()
        assert body["status"] == "ok"  # the hub itself is up
        policies = body["policies"]
        assert policies["status"] == "errors"
        assert policies["active"] == ["case_records", "corridor_flows"]
        (error,) = policies["errors"]
        assert error["file"] == "bank_alerts.yaml" and error["field"] == "budget"
        assert "per-member budget cannot exceed the global budget" in error["reason"]
        assert isinstance(error["line"], int)
        assert str(folder) not in str(body)  # names only, no server paths

        _edit(folder / "bank_alerts.yaml", "per_member: \"9\"", "per_member: \"1\"")

        def healthy() -> bool:
            return bool(httpx.get(hub.url + "/health", timeout=10).json()["policies"]
                        ["status"] == "ok")

        _wait_for(healthy)  # the app's watcher polls every second
        assert hub.services.policies.current().datasets() == [
            "bank_alerts", "case_records", "corridor_flows"
        ]


# -- the CLI ---------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TAHUB_DATA_DIR": str(tmp_path / "data"), "TAHUB_LOG_LEVEL": "WARNING"}


def test_policy_check_passes_the_shipped_files(env: dict[str, str]) -> None:
    files = sorted(str(p) for p in SHIPPED.glob("*.yaml"))
    result = runner.invoke(app, ["policy", "check", *files], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok: {f}" for f in files]


def test_policy_check_prints_file_line_and_reason(env: dict[str, str], folder: Path) -> None:
    broken = folder / "bank_alerts.yaml"
    _edit(broken, "      - count_units", "      - {function: count_units, field: amount}")
    good = folder / "corridor_flows.yaml"
    result = runner.invoke(app, ["policy", "check", str(broken), str(good)], env=env)
    assert result.exit_code == 1
    assert result.stdout.strip() == f"ok: {good}"
    line = next(i for i, t in enumerate(broken.read_text().splitlines(), 1)
                if "count_units, field" in t)
    assert f"{broken}:{line}: rules.0.measures.3: count_units takes no field" in result.stderr
    assert "1 error(s)" in result.stderr


def test_policy_schema_prints_and_writes_the_committed_schema(
    env: dict[str, str], tmp_path: Path
) -> None:
    printed = runner.invoke(app, ["policy", "schema"], env=env)
    assert printed.exit_code == 0 and printed.stdout == policy_schema_text()
    out = tmp_path / "schema.json"
    written = runner.invoke(app, ["policy", "schema", "--out", str(out)], env=env)
    assert written.exit_code == 0 and out.read_text() == policy_schema_text()
