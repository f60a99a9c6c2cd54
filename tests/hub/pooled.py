"""A real pooled dataset for engine tests: extracts of several partners committed through the
real IngestService (real SQLite, real folder store, real unit index), and plans built
directly (the engine trusts an authorised plan; authorisation has its own tests)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hub.actors import Actor, MemberKind, Role
from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.governance.policies import Function
from hub.ingest.service import IngestService, UploadRequest
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.query.engine import QueryEngine
from hub.query.plan import DimensionPlan, FilterPlan, MeasurePlan, PostProcessPlan, QueryPlan
from hub.settings import Settings
from hub.storage.db import make_engine, organisations, utcnow
from hub.storage.objects import ObjectStore, open_store
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import sha256_of, write_extract

ORG_C = "org_cccccccccccc"
ORGS = (ORG_A, ORG_B, ORG_C)


@dataclass
class Pool:
    """A hub data folder with its ingest service and query engine."""

    root: Path
    settings: Settings
    db: sa.Engine
    store: ObjectStore
    ingest: IngestService
    engine: QueryEngine
    _n: int = 0

    @classmethod
    def create(cls, root: Path, migrated_db: Path, registry: ContractRegistry,
               database_url: str | None = None) -> Pool:
        """A pool on a copy of ``migrated_db`` (SQLite), or on ``database_url``: a migrated
        PostgreSQL database without members (and then PostgreSQL's unit index)."""
        settings = Settings(data_dir=root / "data", database_url=database_url or "")
        settings.data_dir.mkdir(parents=True)
        members = [(ORG_C, "Police C", MemberKind.LAW_ENFORCEMENT)]
        if database_url is None:
            shutil.copyfile(migrated_db, settings.data_dir / "tahub.db")
        else:
            members += [(ORG_A, "Bank A", MemberKind.BANK), (ORG_B, "NGO B", MemberKind.NGO)]
        db = make_engine(settings.database_url)
        with db.begin() as conn:
            conn.execute(sa.insert(organisations), [
                {"id": org, "name": name, "kind": kind, "created_at": utcnow()}
                for org, name, kind in members])
        store = open_store(settings.storage, settings)
        ingest = IngestService(engine=db, store=store, registry=registry, settings=settings)
        engine = QueryEngine(store=store, ingest=ingest, settings=settings)
        return cls(root, settings, db, store, ingest, engine)

    def close(self) -> None:
        self.db.dispose()

    def commit(self, org: str, contract: Contract, rows: list[dict[str, Any]]) -> str:
        """Upload and commit ``rows`` as ``org``; the new extract's id."""
        self._n += 1
        path = write_extract(self.root / f"extract-{self._n}.parquet", contract, rows)
        actor = _partner(org)
        started = self.ingest.start_upload(actor, UploadRequest(
            dataset=contract.dataset, contract_version=contract.version,
            size=path.stat().st_size, sha256=sha256_of(path)))
        assert started.upload is not None, "the same content was committed before"
        self.ingest.append_chunk(actor, started.upload.id, 0, path.read_bytes())
        return self.ingest.commit_upload(actor, started.upload.id).extract.id

    def withdraw(self, org: str, extract_id: str) -> None:
        self.ingest.withdraw_extract(_partner(org), extract_id)


def _partner(org: str) -> Actor:
    return Actor(client_id=f"cli_{org[-4:]}", org=org, org_name=org,
                 roles=frozenset({Role.PARTNER}))


def plan(
    contract: Contract,
    dimensions: Sequence[tuple[str, tuple[str | None, ...]]] = (),
    filters: Mapping[str, tuple[str, ...]] | None = None,
    *,
    max_rows: int = 10,
) -> QueryPlan:
    """A plan over ``contract`` as ``authorise`` would make it (one count measure)."""
    dims = tuple(
        DimensionPlan(name, contract.field(name).type, keys,
                      len(keys) if contract.field(name).type is FieldType.CATEGORY_LIST else 1)
        for name, keys in dimensions
    )
    measure = Measure.ZCDP
    return QueryPlan(
        dataset=contract.dataset, contract=contract, contract_version=contract.version,
        rule="test", dimensions=dims,
        measures=(MeasurePlan(Function.COUNT, None, None),),
        filters=tuple(
            FilterPlan(name, contract.field(name).type, tuple(sorted(values)))
            for name, values in sorted((filters or {}).items())
        ),
        max_rows=max_rows, accounting=measure,
        limits=BudgetLimits(measure, Fraction(10), Fraction(5), Fraction(1), date(2026, 1, 1)),
        min_partners=1, cost=Cost(measure, Fraction(1, 10)), target=None,
        postprocess=PostProcessPlan(),
    )
