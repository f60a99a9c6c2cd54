"""People: the persons of member organisations, with their roles, and how they sign in.

A person belongs to one member organisation and holds roles within it (partner engineer,
analyst, governance officer, hub administrator: :class:`hub.actors.Role`). The hub's
administrator registers people (``tahub admin person add``); then a person signs in:

* on the embedded default, with an e-mail and a password at the hub's own OpenID provider
  (``hub.identity.signin``); only an argon2id hash of the password is stored, and a password shorter
  than :data:`MIN_PASSWORD` characters is refused;
* in production, at the organisation's identity provider (``TAHUB_OIDC_ISSUER``, see
  ``hub.identity.oidc``): the provider's ``(issuer, subject)`` is linked to the person at the first
  sign-in, by the e-mail address the provider asserts as verified, and used from then on.

A disabled person cannot sign in, and the tokens already issued to it stop working at once
(every bearer token is checked against this table). Every change is audited.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError
from sqlalchemy import Connection, Engine

from hub.actors import Actor, Role, parse_roles
from hub.errors import AuthError, Conflict, InvalidInput, NotFound
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.storage.db import organisations, people, read_connection, utcnow, writing

__all__ = ["MIN_PASSWORD", "NewPerson", "People", "Person", "normalise_email"]

log = structlog.get_logger(__name__)

MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PERSON_ID = re.compile(r"usr_[0-9a-f]{16}")


def normalise_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidInput(f"{value!r} is not an e-mail address", field="email")
    return email



@dataclass(frozen=True, slots=True)
class Person:
    id: str
    org_id: str
    org_name: str
    email: str
    name: str
    roles: tuple[str, ...]
    disabled: bool
    has_password: bool
    issuer: str | None

    def actor(self) -> Actor:
        return Actor(client_id=self.id, org=self.org_id, org_name=self.org_name,
                     roles=frozenset(Role(r) for r in self.roles if r in set(Role)))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "org": self.org_id, "org_name": self.org_name,
                "email": self.email, "name": self.name, "roles": list(self.roles),
                "disabled": self.disabled, "password": self.has_password,
                "external": self.issuer is not None}


@dataclass(frozen=True, slots=True)
class NewPerson:
    """A registered person; ``password`` is set only when the hub generated it (shown once)."""

    person: Person
    password: str | None


class People:
    """People in the metadata store. Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit
        self._hasher = PasswordHasher()
        # verified against when the e-mail is unknown, so that timing does not tell
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def _writing(self) -> AbstractContextManager[Connection]:
        return writing(self.engine, Conflict(
            "a person with that e-mail address or external identity exists already",
            field="email"))

    def _reading(self) -> AbstractContextManager[Connection]:
        return read_connection(self.engine)

    def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters",
                               field="password")
        return self._hasher.hash(password)

    @staticmethod
    def _select() -> Any:
        p, o = people, organisations
        return sa.select(p, o.c.name.label("org_name")).join(o, o.c.id == p.c.org_id)

    @staticmethod
    def _person(row: Any) -> Person:
        return Person(id=row.id, org_id=row.org_id, org_name=row.org_name, email=row.email,
                      name=row.name, roles=tuple(row.roles), disabled=row.disabled_at is not None,
                      has_password=row.password_hash is not None, issuer=row.issuer)

    # -- administration -------------------------------------------------------------------
    def add(self, org_id: str, email: str, name: str, roles: Iterable[Role | str], *,
            password: str | None = None, generate_password: bool = False,
            actor: str | None = None) -> NewPerson:
        """Register a person of ``org_id``. With neither a password nor
        ``generate_password`` the person can only sign in through the external provider."""
        email = normalise_email(email)
        name = " ".join(name.split()) or email
        if len(name) > 200:
            raise InvalidInput("a name has at most 200 characters", field="name")
        role_values = parse_roles(roles, "person")
        shown = secrets.token_urlsafe(15) if generate_password and password is None else None
        secret = password if password is not None else shown
        hashed = self._hash(secret) if secret is not None else None
        person_id = f"usr_{secrets.token_hex(8)}"
        with self._writing() as conn:
            if conn.execute(sa.select(organisations.c.id).where(
                    organisations.c.id == org_id)).first() is None:
                raise NotFound(f"no member organisation {org_id!r}", field="org_id")
            conn.execute(people.insert().values(
                id=person_id, org_id=org_id, email=email, name=name, roles=list(role_values),
                password_hash=hashed, issuer=None, subject=None, created_at=utcnow(),
                disabled_at=None, last_sign_in_at=None))
            self.audit.append(AuditEvent(
                Action.PERSON_ADDED, actor=actor, org=org_id, object_type="person",
                object_id=person_id, details={"roles": list(role_values),
                                              "has_password": hashed is not None}),
                conn=conn)
        log.info("person added", person=person_id, org=org_id)
        return NewPerson(self.get(person_id), shown)

    def set_password(self, person_id: str, password: str, *, actor: str | None = None) -> None:
        hashed = self._hash(password)
        self._update(person_id, Action.PERSON_PASSWORD_SET, actor, password_hash=hashed)

    def disable(self, person_id: str, *, actor: str | None = None) -> None:
        """Disable a person: no new sign-in, and its tokens stop working at once."""
        self._update(person_id, Action.PERSON_DISABLED, actor, disabled_at=utcnow())

    def set_roles(self, person_id: str, roles: Iterable[Role | str], *,
                  actor: str | None = None) -> None:
        role_values = parse_roles(roles, "person")
        self._update(person_id, Action.PERSON_ROLES_SET, actor, roles=list(role_values))

    def _update(self, person_id: str, action: Action, actor: str | None, **values: Any
                ) -> None:
        with self._writing() as conn:
            row = conn.execute(sa.select(people.c.org_id).where(people.c.id == person_id)
                               ).first()
            if row is None:
                raise NotFound(f"no person {person_id!r}", field="person_id")
            conn.execute(people.update().where(people.c.id == person_id).values(**values))
            details = {"roles": values["roles"]} if "roles" in values else {}
            self.audit.append(AuditEvent(action, actor=actor, org=row.org_id,
                                         object_type="person", object_id=person_id,
                                         details=details), conn=conn)

    def get(self, person_id: str) -> Person:
        with self._reading() as conn:
            row = conn.execute(self._select().where(people.c.id == person_id)).first()
        if row is None:
            raise NotFound(f"no person {person_id!r}", field="person_id")
        return self._person(row)

    def find(self, person_id: str) -> Person | None:
        """The person ``person_id`` or None (a bearer token's subject)."""
        if not _PERSON_ID.fullmatch(person_id):
            return None
        with self._reading() as conn:
            row = conn.execute(self._select().where(people.c.id == person_id)).first()
        return None if row is None else self._person(row)

    def by_email(self, email: str) -> Person:
        with self._reading() as conn:
            row = conn.execute(self._select().where(
                people.c.email == normalise_email(email))).first()
        if row is None:
            raise NotFound(f"no person with the e-mail address {email!r}", field="email")
        return self._person(row)

    def list(self, org_id: str | None = None) -> list[Person]:
        query = self._select().order_by(people.c.org_id, people.c.email)
        if org_id is not None:
            query = query.where(people.c.org_id == org_id)
        with self._reading() as conn:
            return [self._person(r) for r in conn.execute(query).all()]

    # -- signing in -----------------------------------------------------------------------
    def check_password(self, email: str, password: str) -> Person:
        """The person whose e-mail and password these are; :class:`AuthError` otherwise,
        with one message for every reason (no account enumeration)."""
        refused = AuthError("wrong e-mail address or password")
        try:
            address = normalise_email(email)
        except InvalidInput:
            raise refused from None
        with self._reading() as conn:
            row = conn.execute(self._select().where(people.c.email == address)).first()
        stored = row.password_hash if row is not None and row.password_hash else self._dummy
        try:
            ok = bool(self._hasher.verify(stored, password))
        except (Argon2Error, InvalidHashError):
            ok = False
        if row is None or row.password_hash is None or not ok or row.disabled_at is not None:
            raise refused
        if self._hasher.check_needs_rehash(row.password_hash):
            with self._writing() as conn:
                conn.execute(people.update().where(people.c.id == row.id)
                             .values(password_hash=self._hasher.hash(password)))
        return self._person(row)

    def external(self, issuer: str, subject: str, email: str | None,
                 email_verified: bool) -> Person:
        """The person an external provider's identity stands for.

        Known ``(issuer, subject)``: that person. Otherwise the person with the provider's
        *verified* e-mail address, not yet linked to another identity, is linked now (and
        audited). Anything else: :class:`AuthError` (the administrator must add the person).
        """
        linked = self._select().where(people.c.issuer == issuer, people.c.subject == subject)
        with self._reading() as conn:  # every request with a provider's token: read only
            row = conn.execute(linked).first()
        if row is not None:
            if row.disabled_at is not None:
                raise AuthError("this person is disabled")
            return self._person(row)
        with self._writing() as conn:
            row = conn.execute(linked).first()
            if row is None:
                if not email or not email_verified:
                    raise AuthError("this identity is not linked to a person of the hub and "
                                    "its provider asserts no verified e-mail address")
                try:
                    address = normalise_email(email)
                except InvalidInput:
                    raise AuthError("the provider's e-mail address is not valid") from None
                row = conn.execute(self._select().where(people.c.email == address)).first()
                if row is None:
                    raise AuthError(f"no person with the e-mail address {address} is "
                                    "registered at this hub; ask its administrator")
                if row.issuer is not None:
                    raise AuthError("that person is linked to another external identity")
                conn.execute(people.update().where(people.c.id == row.id)
                             .values(issuer=issuer, subject=subject))
                self.audit.append(AuditEvent(
                    Action.PERSON_LINKED, actor=row.id, org=row.org_id, object_type="person",
                    object_id=row.id, details={"issuer": issuer}), conn=conn)
                row = conn.execute(self._select().where(people.c.id == row.id)).one()
            if row.disabled_at is not None:
                raise AuthError("this person is disabled")
            return self._person(row)

    def signed_in(self, person_id: str) -> None:
        with self._writing() as conn:
            conn.execute(people.update().where(people.c.id == person_id)
                         .values(last_sign_in_at=utcnow()))
