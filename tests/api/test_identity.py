"""IdentityService on a real SQLite file: members, clients, keys, tokens, logging hygiene."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from joserfc.jwk import OKPKey

from hub.actors import MemberKind, Role
from hub.errors import AuthError, ConfigError, Conflict, InvalidInput, NotFound, Unavailable
from hub.identity.service import IdentityService
from hub.logging import REDACTED, configure_logging, redact_secrets
from hub.settings import Settings
from hub.storage.db import make_engine, upgrade


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, public_url="https://hub.example.org", log_level="WARNING")


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def identity(engine: sa.Engine, settings: Settings) -> IdentityService:
    return IdentityService(engine=engine, settings=settings)


def test_tokens_round_trip_into_actors(identity: IdentityService) -> None:
    creds = identity.register_member("Round Trip Bank", MemberKind.BANK, ["partner", "analyst"])
    assert creds.roles == ("analyst", "partner")
    client = identity.query_client(creds.client_id)
    assert client is not None and client.check_client_secret(creds.client_secret)
    assert not client.check_client_secret(creds.client_secret[:-1])
    actor = identity.verify_token(identity.issue_token(client))
    assert (actor.client_id, actor.org, actor.org_name) == (
        creds.client_id, creds.org_id, "Round Trip Bank",
    )
    assert actor.roles == frozenset({Role.PARTNER, Role.ANALYST})


def test_the_signing_key_persists_and_old_keys_keep_verifying(
    identity: IdentityService, engine: sa.Engine, settings: Settings
) -> None:
    creds = identity.register_member("Key Bank", "bank", [Role.PARTNER])
    client = identity.query_client(creds.client_id)
    assert client is not None
    old_token = identity.issue_token(client)
    (key_file,) = settings.keys_dir.glob("*.jwk")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "d" in json.loads(key_file.read_text())

    again = IdentityService(engine=engine, settings=settings)
    assert again.jwks() == identity.jwks()  # loaded, not regenerated
    assert again.verify_token(old_token).client_id == creds.client_id

    # A newer key (rotation) signs from now on; the old one still verifies.
    newer = OKPKey.generate_key("Ed25519")
    path = settings.keys_dir / f"{newer.thumbprint()}.jwk"
    path.write_text(json.dumps(newer.as_dict(private=True)))
    os.chmod(path, 0o600)
    os.utime(path, (time.time() + 10, time.time() + 10))
    rotated = IdentityService(engine=engine, settings=settings)
    assert {k["kid"] for k in rotated.jwks()["keys"]} == {
        newer.thumbprint(), key_file.stem,
    }
    assert all("d" not in k for k in rotated.jwks()["keys"])
    new_token = rotated.issue_token(client)
    header = json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))
    assert header["kid"] == newer.thumbprint()
    assert rotated.verify_token(old_token).client_id == creds.client_id
    with pytest.raises(AuthError, match="unknown key"):
        identity.verify_token(new_token)  # the old process does not know the new key


def test_a_remembered_token_is_still_checked_on_every_use(
    identity: IdentityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a token's verified signature is remembered: its claims (expiry), its client
    (revocation) and its key are checked afresh each time, and refusals are never kept."""
    creds = identity.register_member("Cache Bank", "bank", [Role.ANALYST])
    client = identity.query_client(creds.client_id)
    assert client is not None
    token = identity.issue_token(client)
    for _ in range(3):  # the first use verifies the signature, the others remember it
        assert identity.verify_token(token).client_id == creds.client_id
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{'A' * len(signature)}"
    for _ in range(2):
        with pytest.raises(AuthError, match="signature does not verify"):
            identity.verify_token(forged)

    later = time.time() + 7 * 24 * 3600
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: later)
        with pytest.raises(AuthError, match="token expired"):
            identity.verify_token(token)
    assert identity.verify_token(token).client_id == creds.client_id

    (kid,) = identity._keys.by_kid
    key = identity._keys.by_kid.pop(kid)  # the key retired while the token is remembered
    with pytest.raises(AuthError, match="unknown key"):
        identity.verify_token(token)
    identity._keys.by_kid[kid] = key

    identity.revoke_client(creds.client_id)
    with pytest.raises(AuthError, match="has been revoked"):
        identity.verify_token(token)


def test_a_corrupt_key_file_is_a_config_error(engine: sa.Engine, settings: Settings) -> None:
    settings.keys_dir.mkdir(parents=True)
    (settings.keys_dir / "broken.jwk").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        IdentityService(engine=engine, settings=settings)


def test_member_input_is_checked(identity: IdentityService) -> None:
    with pytest.raises(InvalidInput) as bad_role:
        identity.register_member("Role Bank", "bank", ["superuser"])
    assert bad_role.value.field == "roles"
    with pytest.raises(InvalidInput) as no_role:
        identity.register_member("Role Bank", "bank", [])
    assert no_role.value.field == "roles"
    with pytest.raises(InvalidInput) as bad_kind:
        identity.register_member("Kind Bank", "casino", ["partner"])
    assert bad_kind.value.field == "kind"
    identity.register_member("Same  Name", "ngo", ["partner"])
    with pytest.raises(Conflict):
        identity.register_member(" Same Name ", "ngo", ["partner"])  # spaces normalised
    with pytest.raises(NotFound):
        identity.add_client("org_missing", ["partner"])
    assert [m["name"] for m in identity.members()] == ["Same Name"]


def test_members_never_carry_secrets(identity: IdentityService) -> None:
    creds = identity.register_member("Listed NGO", MemberKind.NGO, [Role.PARTNER])
    extra = identity.add_client(creds.org_id, [Role.ANALYST])
    identity.revoke_client(extra.client_id)
    identity.revoke_client(extra.client_id)  # twice is harmless
    (member,) = identity.members()
    dumped = json.dumps(member, default=str)
    assert creds.client_secret not in dumped and extra.client_secret not in dumped
    assert "argon2" not in dumped and "secret" not in dumped
    states = {c["client_id"]: c["revoked_at"] is not None for c in member["clients"]}
    assert states == {creds.client_id: False, extra.client_id: True}
    assert identity.query_client(extra.client_id) is None


def test_database_errors_are_translated(settings: Settings, tmp_path: Path) -> None:
    broken = sa.create_engine(f"sqlite:///{tmp_path}")  # a folder is no database
    identity = IdentityService(engine=broken, settings=settings)
    with pytest.raises(Unavailable, match="metadata store"):
        identity.register_member("Down Bank", "bank", ["partner"])
    with pytest.raises(Unavailable):
        identity.members()
    broken.dispose()


def test_secrets_and_tokens_are_redacted_from_log_lines(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    event = redact_secrets(None, "info", {"client_secret": "s3", "access_token": "t", "n": 1})
    assert event == {"client_secret": REDACTED, "access_token": REDACTED, "n": 1}
    try:
        configure_logging(settings.model_copy(update={"log_json": True, "log_level": "INFO"}))
        with structlog.contextvars.bound_contextvars(request_id="rid-7"):
            structlog.get_logger("test").info("issued", authorization="Bearer abc", jti="j1")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["event"] == "issued" and line["request_id"] == "rid-7"
        assert line["authorization"] == REDACTED and line["jti"] == "j1"
        assert "Bearer abc" not in json.dumps(line)
    finally:
        configure_logging(settings)
