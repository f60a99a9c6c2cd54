"""The incidents dataset: the reviewed incidents, as the hub's own extract of ``incidents``.

Reviewers code incidents (:mod:`hub.osint.review`); :meth:`IncidentPublisher.publish` turns
every accepted incident into one row of the ``incidents`` contract (contracts/incidents.v1.yaml)
and commits them as one extract of the hub's "Open sources" organisation through the same
ingest path as any member's extract (every row re-validated, units numbered for bounding),
then withdraws the extract it replaces. Queries, policies, the client and the workspace then
treat incidents like any other dataset, and can set them beside members' case records.

A row holds only reviewed codes, never a text. The incident's month is the one its reviewer
coded, else the month its first source was published (or collected), as the contract says.
The privacy unit is the incident, named by a token derived from its id
(``<key id>.<sha256 hex>``, the form of every pseudonymised identifier); the incident's
``source_type`` is ``news`` when only published articles told it, ``crowd`` when only crowd
reports did, ``news_and_crowd`` when both did (its codes may hold what only a report said, so
only ``news`` rows can be public: policies/incidents.yaml ``public_rows``), and ``sources``
how many items told it.

A row the contract refuses (a month outside its range, a code its domains no longer hold)
is left out of the extract, and logged with the incident and the reason, rather than
holding back every other incident: :attr:`Published.left_out` names them, and
``tahub review publish`` prints them, for a reviewer to correct.

Publishing is idempotent: the same accepted incidents give the same extract, which the ingest
path recognises (nothing new is committed, nothing withdrawn). The hub publishes after every
reviewer's decision, in the background (:meth:`IncidentPublisher.publish_soon`: decisions
made while a publication runs are published together by one more run), and on request
(``tahub review publish``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
import structlog
from sqlalchemy import Engine

from hub.actors import Actor, MemberKind, Role
from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.contracts.rowcheck import check_relation
from hub.contracts.validation import ROW_COLUMN, Side
from hub.errors import Conflict
from hub.identity.service import IdentityService
from hub.ingest.service import IngestService, UploadRequest
from hub.storage.db import organisations, osint_incidents, osint_items, read_connection
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

__all__ = ["DATASET", "OPEN_SOURCES", "IncidentPublisher", "Published", "incident_row"]

DATASET = "incidents"
#: The organisation that contributes the incidents (created on the first publication).
OPEN_SOURCES = "Open sources"
#: The key id of incident tokens: the hub's own, not a member network's.
_KEY_ID = "05170517"
_log = structlog.get_logger("hub.osint.incidents")
_ROLES = {"origin": "source_country", "transit": "transit_country",
          "destination": "destination_country"}
_SOURCE_TYPES = {(True, False): "news", (False, True): "crowd", (True, True): "news_and_crowd",
                 (False, False): "crowd"}  # no item (cannot happen): never public
_LISTS = {"exploitation_type": "exploitation_type", "recruitment": "recruitment",
          "transport": "transport", "control": "means_of_control", "gender": "gender"}


@dataclass(frozen=True, slots=True)
class Published:
    """What a publication did: the extract now visible (None: no incident accepted yet),
    its rows, whether it is new, the extracts it replaced, and the incidents left out
    (with why: the contract refused their rows)."""

    extract: str | None
    rows: int
    new: bool
    withdrawn: tuple[str, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()


def incident_row(incident: str, coded: dict[str, Any], kinds: set[str],
                 sources: int, reported: dt.datetime) -> dict[str, Any]:
    """One accepted incident as a row of the ``incidents`` contract (module docstring):
    ``reported`` gives the month when the reviewer coded none. The first location of
    each role is its country of the route."""
    row: dict[str, Any] = {
        "incident": f"{_KEY_ID}.{hashlib.sha256(incident.encode()).hexdigest()}",
        "age_group": coded.get("age_group") or "unknown",
        "age_band": coded.get("age_band") or "Unknown",
        "period": coded.get("period") or f"{reported.year:04d}-{reported.month:02d}",
        "source_type": _SOURCE_TYPES[("article" in kinds, "report" in kinds)],
        "sources": sources,
    }
    for role, column in _ROLES.items():
        row[column] = next((loc["country"] for loc in coded.get("locations", ())
                            if loc.get("role") == role), None)
    for key, column in _LISTS.items():
        row[column] = sorted(set(coded.get(key) or ())) or None
    return row


class IncidentPublisher:
    """Publishes the accepted incidents as the hub's extract of ``incidents``."""

    def __init__(self, engine: Engine, *, ingest: IngestService, identity: IdentityService,
                 registry: ContractRegistry, limits: DuckLimits) -> None:
        self._engine = engine
        self._limits = limits
        self._ingest = ingest
        self._identity = identity
        self._registry = registry
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._idle = threading.Event()
        self._idle.set()

    def publish_soon(self) -> None:
        """:meth:`publish` in a background thread; asked again while one runs, it runs once
        more after it (so the last decision is always published). A failure is logged: the
        next decision, or ``tahub review publish``, publishes again."""
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self._idle.clear()
        threading.Thread(target=self._publish_until_done, name="tahub-incidents",
                         daemon=True).start()

    def _publish_until_done(self) -> None:
        while True:
            try:
                done = self.publish()
                _log.info("incidents.published", extract=done.extract, rows=done.rows,
                          new=done.new)
            except Exception as exc:  # logged; the next request publishes again
                _log.warning("incidents.publish_failed", error=type(exc).__name__)
            with self._lock:
                if not self._again:
                    self._running = False
                    self._idle.set()
                    return
                self._again = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no background publication runs (at most ``timeout`` seconds); whether
        none does."""
        return self._idle.wait(timeout)

    def publish(self) -> Published:
        """Commit the accepted incidents as one extract and withdraw the ones it replaces.

        Two publications at once (two hub processes) converge: each keeps only the newest
        visible extract of the organisation, the same one for both; the next publication
        brings it up to date if the newest was built from an older state."""
        contract = self._registry.get(DATASET)
        actor = self._actor()
        rows, left_out = self._checked(contract, self._rows())
        for incident, reason in left_out:
            _log.warning("incidents.left_out", incident=incident, reason=reason)
        if not rows:
            return Published(None, 0, False, left_out=left_out)
        data = _parquet(contract, rows)
        started = self._ingest.start_upload(actor, UploadRequest(
            dataset=DATASET, contract_version=contract.version, size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), filename="incidents.parquet",
            transfer="chunks"))
        if started.upload is None:  # the same incidents are published already
            return Published(started.extract.id if started.extract else None, len(rows),
                             False, left_out=left_out)
        offset = started.upload.offset  # > 0 when an interrupted publication is resumed
        if offset < len(data):
            self._ingest.append_chunk(actor, started.upload.id, offset, data[offset:])
        committed = self._ingest.commit_upload(actor, started.upload.id).extract
        *older, newest = [e.id for e in self._ingest.visible_extracts(DATASET)
                          if e.org == actor.org]
        for extract in older:
            self._ingest.withdraw_extract(actor, extract)
        return Published(newest, len(rows), committed.id == newest, tuple(older), left_out)

    def _checked(self, contract: Contract, rows: list[tuple[str, dict[str, Any]]],
                 ) -> tuple[list[dict[str, Any]], tuple[tuple[str, str], ...]]:
        """The rows the contract accepts, by the ingest path's own check
        (:func:`~hub.contracts.rowcheck.check_relation`), and the incidents it refuses with
        the first reason for each (module docstring)."""
        if not rows:
            return [], ()
        table = _table(contract, [row for _, row in rows])
        table = table.append_column(ROW_COLUMN, pa.array(range(1, len(rows) + 1), pa.int64()))
        with sandboxed_duckdb(self._limits) as con:
            con.register("incidents", table)
            result = check_relation(con, contract, "incidents", Side.HUB,
                                    max_errors=2 ** 31)
        refused: dict[int, str] = {}
        for error in result.errors:
            if error.row is not None:
                refused.setdefault(error.row - 1, f"{error.field}: {error.reason}")
        return ([row for n, (_, row) in enumerate(rows) if n not in refused],
                tuple((rows[n][0], reason) for n, reason in sorted(refused.items())))

    def _rows(self) -> list[tuple[str, dict[str, Any]]]:
        """Every accepted incident's id and row, in the order of their ids (a stable
        extract)."""
        i, it = osint_incidents, osint_items
        with read_connection(self._engine) as conn:
            coded = conn.execute(
                sa.select(i.c.id, i.c.coded, i.c.created_at)
                .where(i.c.state == "accepted", i.c.coded.is_not(None))
                .order_by(i.c.id)).all()
            items = conn.execute(
                sa.select(it.c.incident_id, it.c.kind,
                          sa.func.coalesce(it.c.published_at, it.c.collected_at).label("at"))
                .where(it.c.incident_id.in_([r.id for r in coded]))).all()
        told: dict[str, list[Any]] = {}
        for item in items:
            told.setdefault(item.incident_id, []).append(item)
        out = []
        for r in coded:
            mine = told.get(r.id, [])
            reported = min((x.at for x in mine), default=r.created_at)
            out.append((r.id, incident_row(r.id, r.coded, {x.kind for x in mine},
                                           max(len(mine), 1), reported)))
        return out

    def _actor(self) -> Actor:
        """The "Open sources" organisation as a partner (registered on first use)."""
        org = self._org()
        if org is None:
            with contextlib.suppress(Conflict):  # another process registered it meanwhile
                self._identity.register_member(OPEN_SOURCES, MemberKind.OTHER,
                                               (Role.PARTNER,), actor="hub:osint")
            org = self._org()
        return Actor("hub:osint", str(org), OPEN_SOURCES, frozenset({Role.PARTNER}))

    def _org(self) -> str | None:
        with read_connection(self._engine) as conn:
            return conn.execute(sa.select(organisations.c.id)
                                .where(organisations.c.name == OPEN_SOURCES)).scalar()


def _table(contract: Contract, rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a table of ``contract``'s fields but the hub-stamped partner, with the
    metadata the ingest path reads."""
    types = {FieldType.CATEGORY_LIST: pa.list_(pa.string()), FieldType.INTEGER: pa.int64()}
    fields = [f for f in contract.fields if f.role.value != "partner"]
    schema = pa.schema([(f.name, types.get(f.type, pa.string())) for f in fields]).with_metadata({
        "tahub.dataset": DATASET, "tahub.contract_version": str(contract.version),
        "tahub.key_id": _KEY_ID, "tahub.connector_version": "hub.osint"})
    return pa.Table.from_pylist(rows, schema=schema)


def _parquet(contract: Contract, rows: list[dict[str, Any]]) -> bytes:
    """The rows as a Parquet extract of ``contract`` (:func:`_table`)."""
    out = io.BytesIO()
    pq.write_table(_table(contract, rows), out, compression="zstd")
    return out.getvalue()
