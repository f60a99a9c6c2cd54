"""The settings file (TOML, below the environment) and the shared signing-key file.

Real files, a real SQLite metadata store and real tokens: two IdentityService instances
stand for two hub processes or replicas with separate data folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import OKPKey, RSAKey
from typer.testing import CliRunner

from hub.actors import MemberKind, Role
from hub.cli.main import app
from hub.errors import AuthError, ConfigError
from hub.identity.service import IdentityService
from hub.settings import Settings, load_settings
from hub.storage.db import make_engine, upgrade


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("TAHUB_"):
            monkeypatch.delenv(name)
    return monkeypatch


# -- the settings file --------------------------------------------------------------------------
def test_the_file_sets_values_the_environment_and_arguments_override(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tahub.toml"
    path.write_text('workers = 3\nlog_level = "DEBUG"\nport = 9000\n'
                    f'data_dir = "{tmp_path / "from-file"}"\n')
    clean_env.setenv("TAHUB_SETTINGS_FILE", str(path))
    clean_env.setenv("TAHUB_PORT", "8100")
    settings = load_settings()
    assert (settings.workers, settings.log_level, settings.port) == (3, "DEBUG", 8100)
    assert settings.data_dir == tmp_path / "from-file" and settings.settings_file == path
    assert load_settings(workers=5).workers == 5  # a command-line option beats both
    assert Settings(settings_file=path).workers == 3  # given as an argument, read as well


def test_a_bad_file_names_the_file_line_and_key(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('log_json = true\nworkers = 0\nTAHUB_PORT = 3\n')
    clean_env.setenv("TAHUB_SETTINGS_FILE", str(path))
    clean_env.setenv("TAHUB_CHUNK_BYTES", "12")  # an environment error keeps its variable
    with pytest.raises(ConfigError) as caught:
        load_settings()
    fields = {e.field: e.reason for e in caught.value.errors}
    assert set(fields) == {f"{path}:2: workers", f"{path}:3: TAHUB_PORT", "TAHUB_CHUNK_BYTES"}
    assert "greater than or equal to 1" in fields[f"{path}:2: workers"]
    assert "without TAHUB_" in fields[f"{path}:3: TAHUB_PORT"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("workers = [\n", "is not valid TOML"),
     ('settings_file = "other.toml"\n', "cannot be set inside a settings file")],
)
def test_a_missing_or_unreadable_file_is_a_config_error(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, content: str | None, message: str
) -> None:
    path = tmp_path / "tahub.toml"
    if content is not None:
        path.write_text(content)
    clean_env.setenv("TAHUB_SETTINGS_FILE", str(path))
    with pytest.raises(ConfigError) as caught:
        Settings()
    assert message in caught.value.detail and str(path) in caught.value.detail
    assert caught.value.field == "TAHUB_SETTINGS_FILE"


def test_the_cli_prints_the_file_errors_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "tahub.toml"
    path.write_text("workers = -1\n")
    result = CliRunner().invoke(app, ["admin", "migrate"], env={
        "TAHUB_SETTINGS_FILE": str(path), "TAHUB_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1
    assert f"{path}:1: workers" in result.output and "Traceback" not in result.output


# -- the signing-key file -----------------------------------------------------------------------
def _pem(key: OKPKey, *, private: bool = True) -> bytes:
    pem: bytes = key.as_pem(private=private)
    return pem


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[Any]:
    """A factory of IdentityServices on one shared SQLite store, each with its own data_dir."""
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    with ExitStack() as stack:
        def make(name: str, **settings: Any) -> IdentityService:
            s = Settings(data_dir=tmp_path / name, database_url=database_url,
                         public_url="https://hub.example.org", **settings)
            engine = make_engine(database_url)
            stack.callback(engine.dispose)
            upgrade(engine)
            return IdentityService(engine=engine, settings=s)

        yield make


def test_processes_sharing_the_key_file_accept_each_others_tokens(
    tmp_path: Path, hubs: Any
) -> None:
    key = OKPKey.generate_key("Ed25519")
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(_pem(key))
    key_file.chmod(0o600)
    a, b = hubs("a", signing_key_file=key_file), hubs("b", signing_key_file=key_file)
    creds = a.register_member("Shared Key Bank", MemberKind.BANK, [Role.PARTNER])
    client = a.query_client(creds.client_id)
    assert client is not None
    token = a.issue_token(client)
    assert b.verify_token(token).client_id == creds.client_id
    assert a.jwks() == b.jwks() and [k["kid"] for k in a.jwks()["keys"]] == [key.thumbprint()]
    assert not (tmp_path / "a" / "keys").exists()  # no per-process key was made

    separate = hubs("c")  # its own generated key in <data_dir>/keys: a stranger's token
    with pytest.raises(AuthError, match="unknown key"):
        separate.verify_token(token)


def test_rotation_keeps_the_old_public_key_as_a_verification_key(
    tmp_path: Path, hubs: Any
) -> None:
    old, new = OKPKey.generate_key("Ed25519"), OKPKey.generate_key("Ed25519")
    old_file, rotated_file = tmp_path / "old.pem", tmp_path / "rotated.pem"
    old_file.write_bytes(_pem(old))
    rotated_file.write_bytes(_pem(new) + _pem(old, private=False))
    before = hubs("before", signing_key_file=old_file)
    creds = before.register_member("Rotation Bank", MemberKind.BANK, [Role.PARTNER])
    client = before.query_client(creds.client_id)
    assert client is not None
    old_token = before.issue_token(client)

    after = hubs("after", signing_key_file=rotated_file)
    assert after.verify_token(old_token).client_id == creds.client_id  # still in flight
    new_token = after.issue_token(client)
    assert after.verify_token(new_token).client_id == creds.client_id
    assert {k["kid"] for k in after.jwks()["keys"]} == {old.thumbprint(), new.thumbprint()}
    assert all("d" not in k for k in after.jwks()["keys"])  # public parts only
    with pytest.raises(AuthError, match="unknown key"):
        before.verify_token(new_token)  # why the procedure adds the new key first


def _rsa_pem() -> bytes:
    pem: bytes = RSAKey.generate_key(2048).as_pem(private=True)
    return pem


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the signing key file"),
     (b"not a key\n", "holds no PEM key"),
     ("rsa", "PEM block 1 is not an Ed25519 key"),
     ("public", "the first PEM block must be the private key"),
     ("second-rsa", "PEM block 2 is not an Ed25519 key")],
)
def test_an_unreadable_or_wrong_key_file_is_a_clear_config_error(
    tmp_path: Path, hubs: Any, content: Any, message: str
) -> None:
    key = OKPKey.generate_key("Ed25519")
    data = {"rsa": _rsa_pem(), "public": _pem(key, private=False),
            "second-rsa": _pem(key) + _rsa_pem()}.get(content, content)
    key_file = tmp_path / "signing.pem"
    if data is not None:
        key_file.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        hubs("x", signing_key_file=key_file)
    assert message in caught.value.detail and str(key_file) in caught.value.detail
    assert caught.value.field == "TAHUB_SIGNING_KEY_FILE"


def test_the_duckdb_memory_default_is_a_share_of_this_machine() -> None:
    from hub.settings import machine_memory_share

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    eighth = int(machine_memory_share(8).removesuffix("MiB"))
    assert eighth <= total // 8 // 2**20 and eighth >= 1024
    assert Settings().duckdb_memory_limit == machine_memory_share(8)
    assert machine_memory_share(10**9) == "1024MiB"  # never less than 1 GiB
