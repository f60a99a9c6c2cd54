"""The query engine (hub.query.engine) against a brute-force Python reference, on real extracts
committed through the real IngestService and read by real DuckDB."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.errors import InvalidInput, Unavailable
from hub.privacy.noise import to_fixed
from hub.query import bounds
from hub.query.engine import QueryEngine
from hub.query.plan import DimensionPlan, FilterPlan, QueryPlan
from hub.query.sql import Part, compile_plan
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import token, valid_rows
from tests.hub.pooled import ORG_C, ORGS, Pool, plan

TYPOLOGIES = ("front_company", "exploitative_employment", "funnel_account",
              "alternative_payment", "unknown")
STREAMS = ("sexual_exploitation", "forced_labour", "organ_removal")
MONTHS = ("2025-01", "2025-02", "2025-03")
CLAMP = (10.0, 1000.0)
CONTRACT_CLAMP = (0.0, 50000.0)  # bank_alerts' amount: its __fx_amount column is stored


@pytest.fixture
def pool(tmp_path: Path, migrated_db: Path, registry: ContractRegistry) -> Iterator[Pool]:
    p = Pool.create(tmp_path, migrated_db, registry)
    yield p
    p.close()


@pytest.fixture(scope="module")
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 1)


def alert(contract: Contract, subject: str, typology: str = "unknown", amount: float = 50.0,
          stream: str | None = None, period: str = "2025-01") -> dict[str, Any]:
    (row,) = valid_rows(contract, 1)
    row.update(subject=token(subject), typology=typology, amount=amount,
               exploitation_stream=stream, period=period)
    return row


# -- the reference ----------------------------------------------------------------------------
def stored_rows(pool: Pool, dataset: str) -> list[dict[str, Any]]:
    """Every row of the visible extracts as committed: fields, __unit, __partner, __prio."""
    rows: list[dict[str, Any]] = []
    for extract in pool.ingest.visible_extracts(dataset):
        rows += pq.read_table(pool.store.local_path(extract.object_key)).to_pylist()
    return rows


def kept_rows(rows: list[dict[str, Any]], max_rows: int,
              period: str | None = None) -> list[dict[str, Any]]:
    """Contribution bounding as docs/privacy.md states it: each unit (in each period, with
    per-period bounding) keeps its ``max_rows`` rows of smallest priority."""
    by_unit: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_unit[(row["__unit"], row.get(period) if period else None)].append(row)
    return [r for group in by_unit.values()
            for r in sorted(group, key=lambda r: r["__prio"])[:max_rows]]


def reference(pool: Pool, p: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]:
    """The aggregates of the kept rows (:func:`kept_rows` over the stored extracts), cell by
    cell, in plain Python."""
    kept = kept_rows(stored_rows(pool, p.dataset), p.max_rows,
                     "period" if p.per_period else None)
    grid = list(itertools.product(*(d.keys for d in p.dimensions)))
    cell_of = {k: i for i, k in enumerate(grid)}
    out: list[list[Any]] = [
        [[] for _ in grid] if part.kind == "values" else [0] * len(grid) for part in parts
    ]
    unit_partners: list[dict[str, set[str]]] = [defaultdict(set) for _ in grid]
    for row in kept:
        if not all(_passes(row.get(f.field), f) for f in p.filters):
            continue
        for key in itertools.product(*(_keys(row.get(d.name), d) for d in p.dimensions)):
            cell = cell_of.get(key)
            if cell is None:
                continue
            unit_partners[cell][row["__unit"]].add(row["__partner"])
            for j, part in enumerate(parts):
                value = row.get(part.field) if part.field else None
                if part.kind == "count":
                    out[j][cell] += 1
                elif part.kind == "sum" and value is not None:
                    lo, hi = part.clamp or (0, 0)
                    scaled = min(max(value, lo), hi) * float(10**part.decimals)
                    out[j][cell] += to_fixed(scaled, 0)  # ties away from zero, as the SQL
                elif part.kind == "values" and value is not None:
                    lo, hi = part.clamp or (0, 0)
                    out[j][cell].append(min(max(value, lo), hi))
    for j, part in enumerate(parts):
        if part.kind == "count_units":
            out[j] = [len(u) for u in unit_partners]
        elif part.kind == "linked_units":
            out[j] = [sum(len(orgs) >= 2 for orgs in u.values()) for u in unit_partners]
        elif part.kind == "values":
            out[j] = [sorted(v) for v in out[j]]
    return out


def _passes(value: Any, f: FilterPlan) -> bool:
    if f.type is FieldType.CATEGORY_LIST:
        return any(v in f.values for v in value or ())
    return value in f.values


def _keys(value: Any, d: DimensionPlan) -> list[Any]:
    if d.type is FieldType.CATEGORY_LIST:
        return sorted(set(value)) if value else [None]
    return [value]


def run(engine: QueryEngine, p: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]:
    out = engine.aggregate(p, parts)
    return [[sorted(c) for c in o] if part.kind == "values" else o
            for o, part in zip(out, parts, strict=True)]


ALL_PARTS = (
    Part("count"),
    Part("sum", "amount", CLAMP, 0),
    Part("sum", "amount", CLAMP, 2),
    Part("sum", "amount", CONTRACT_CLAMP, 0),  # read from the column stored at commit
    Part("count_units"),
    Part("linked_units"),
    Part("values", "amount", CLAMP),
)


# -- property: engine == reference ------------------------------------------------------------
SHAPES: dict[str, Sequence[Part]] = {
    "units": ALL_PARTS,
    "rows": [p for p in ALL_PARTS if "units" not in p.kind],
    "sums": [p for p in ALL_PARTS if p.kind in ("count", "sum")],
}


def drawn(alerts: Contract, commits: list[tuple[str, list[dict[str, Any]]]],
          dims: tuple[str, ...], filtered: bool, max_rows: int, per_period: bool,
          ) -> tuple[list[tuple[str, list[dict[str, Any]]]], QueryPlan]:
    """The extracts (rows per organisation) and the plan of one drawn example."""
    as_rows = [(org, [alert(alerts, r["subject"], r["typology"], r["amount"], r["stream"],
                            r["period"]) for r in rows]) for org, rows in commits]
    keys = {(org, str(rows)) for org, rows in as_rows}
    assume(len(keys) == len(as_rows))  # the same content twice is one extract (idempotent)
    domain = {"typology": TYPOLOGIES, "exploitation_stream": (*STREAMS, None),
              "period": MONTHS}
    filters = {"period": ("2025-01", "2025-03")} if filtered else {}
    return as_rows, dataclasses.replace(plan(alerts, [(d, domain[d]) for d in dims], filters,
                                             max_rows=max_rows), per_period=per_period)


row_strategy = st.fixed_dictionaries({
    "subject": st.sampled_from("abcdef"),
    "typology": st.sampled_from(TYPOLOGIES[:3]),
    "stream": st.none() | st.sampled_from(STREAMS),
    "amount": st.integers(0, 150_000).map(lambda c: c / 100),
    "period": st.sampled_from(MONTHS),
})
commit_strategy = st.tuples(st.sampled_from(ORGS), st.lists(row_strategy, min_size=1, max_size=12))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    commits=st.lists(commit_strategy, min_size=1, max_size=4),
    withdraw=st.sets(st.integers(0, 3), max_size=1),
    max_rows=st.integers(1, 4),
    dims=st.sampled_from([(), ("typology",), ("typology", "exploitation_stream"),
                          ("exploitation_stream", "period")]),
    filtered=st.booleans(),
    shape=st.sampled_from(["units", "rows", "sums"]),
    per_period=st.booleans(),
)
def test_every_part_equals_the_brute_force_reference(
    migrated_db: Path, registry: ContractRegistry, alerts: Contract,
    commits: list[tuple[str, list[dict[str, Any]]]], withdraw: set[int], max_rows: int,
    dims: tuple[str, ...], filtered: bool, shape: str, per_period: bool,
) -> None:
    # with unit parts the engine aggregates per (cell, unit) first; without, in one level,
    # and counts and sums alone as every row's minus the dropped rows' (compile_subtracted)
    parts = SHAPES[shape]
    as_rows, p = drawn(alerts, commits, dims, filtered, max_rows, per_period)
    # sums: always subtract the dropped rows, however many (they are here, with 6 units)
    share = 1.0 if shape == "sums" else bounds._DROPPED_SHARE
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(bounds, "_DROPPED_SHARE", share):
        pool = Pool.create(Path(tmp), migrated_db, registry)
        try:
            ids = [pool.commit(org, alerts, rows) for org, rows in as_rows]
            withdrawn = {i for i in withdraw if i < len(ids)}
            for i in withdrawn:
                pool.withdraw(as_rows[i][0], ids[i])
            got = run(pool.engine, p, parts)
            want = reference(pool, p, parts)
            present = {key for key, _ in pool.engine.groups(p, parts)}
            cache = pool.settings.data_dir / "cache" / "bounds"
            cut, subtracted = (list(cache.glob(f"*-{kind}-*.parquet")) for kind in ("v3", "drop"))
        finally:
            pool.close()
    assert got == want
    # the groups present are those with kept rows (parts[0] counts them), however counted
    grid = list(itertools.product(*(d.keys for d in p.dimensions)))
    if dims:
        assert present == {key for key, n in zip(grid, want[0], strict=True) if n}
    assert bool(subtracted) == (shape == "sums" and bool(cut))


# -- examples ---------------------------------------------------------------------------------
def test_a_unit_keeps_the_same_rows_whatever_order_they_arrive_in(
    pool: Pool, alerts: Contract
) -> None:
    x = [alert(alerts, "x", "unknown", 1.0), alert(alerts, "x", "funnel_account", 2.0),
         alert(alerts, "x", "unknown", 3.0), alert(alerts, "x", "alternative_payment", 4.0)]
    y = alert(alerts, "y")
    p = plan(alerts, [("typology", TYPOLOGIES)], max_rows=3)
    parts = [Part("count"), Part("count_units"), Part("linked_units"),
             Part("values", "amount", CLAMP)]
    ids = [pool.commit(ORG_A, alerts, [x[0], y]), pool.commit(ORG_B, alerts, x[1:3]),
           pool.commit(ORG_C, alerts, [x[3]])]
    first = run(pool.engine, p, parts)
    assert first == reference(pool, p, parts)
    assert sum(first[0]) == 3 + 1  # x keeps 3 of its 4 rows; y its one
    assert pool.engine.partners("bank_alerts") == 3
    for org, extract_id in zip((ORG_A, ORG_B, ORG_C), ids, strict=True):
        pool.withdraw(org, extract_id)
    # the same rows again, in the reverse order and split otherwise: the same rows count
    pool.commit(ORG_C, alerts, [x[3], x[2]])
    pool.commit(ORG_B, alerts, [x[1]])
    pool.commit(ORG_A, alerts, [y, x[0]])
    again = run(pool.engine, p, parts)
    assert again[0] == first[0] and again[1] == first[1] and again[3] == first[3]
    assert again == reference(pool, p, parts)
    (linked_any,) = pool.engine.aggregate(plan(alerts, max_rows=3), [Part("linked_units")])
    assert linked_any == [1]  # x is at several partners whichever rows it keeps


def test_empty_cells_are_zeros_and_no_extracts_gives_a_zero_grid(
    pool: Pool, alerts: Contract
) -> None:
    p = plan(alerts, [("typology", TYPOLOGIES), ("period", MONTHS)])
    parts = [Part("count"), Part("sum", "amount", CLAMP), Part("values", "amount", CLAMP)]
    assert pool.engine.aggregate(p, parts) == [[0] * 15, [0] * 15, [[]] * 15]
    assert pool.engine.partners("bank_alerts") == 0
    pool.commit(ORG_A, alerts, [alert(alerts, "x", "funnel_account", 5.0, period="2025-02")])
    count, total, values = pool.engine.aggregate(p, parts)
    cell = TYPOLOGIES.index("funnel_account") * 3 + 1  # itertools.product order
    assert count == [int(i == cell) for i in range(15)]
    assert total[cell] == 10 and sum(total) == 10  # clamped up to 10
    assert values[cell] == [10.0]
    # no dimensions: one cell
    assert pool.engine.aggregate(plan(alerts), [Part("count")]) == [[1]]


def test_a_query_reads_the_state_its_prefetch_read_once_and_only_while_fresh(
    pool: Pool, alerts: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prefetch (before the charge) and the query's run (after it) read the dataset's
    visible extracts once between them; a prefetch serves one run, of its own dataset, and
    only within PREFETCH_FRESH seconds: a later run reads the state again (a commit made
    meanwhile is in it)."""
    pool.commit(ORG_A, alerts, [alert(alerts, "x", "funnel_account")])
    reads: list[str] = []
    visible = pool.ingest.visible_extracts
    monkeypatch.setattr(pool.ingest, "visible_extracts",
                        lambda dataset: reads.append(dataset) or visible(dataset))
    p = plan(alerts, [("typology", TYPOLOGIES)])

    def read_by(step: Any) -> int:
        before = len(reads)
        step()
        return len(reads) - before

    once = read_by(lambda: pool.engine.prefetch("bank_alerts"))  # its extracts and persons
    assert once >= 1
    assert read_by(lambda: pool.engine.aggregate(p, [Part("count")])) == 0
    pool.commit(ORG_B, alerts, [alert(alerts, "y", "funnel_account")])
    assert read_by(lambda: pool.engine.aggregate(p, [Part("count")])) == once  # used once
    assert sum(pool.engine.aggregate(p, [Part("count")])[0]) == 2  # the commit is in it
    pool.engine.prefetch("case_records")  # another dataset's prefetch serves no other
    assert read_by(lambda: pool.engine.aggregate(p, [Part("count")])) == once
    monkeypatch.setattr("hub.query.engine.PREFETCH_FRESH", 0.0)  # stale at once
    pool.engine.prefetch("bank_alerts")
    assert read_by(lambda: pool.engine.aggregate(p, [Part("count")])) == once


def test_filters_keep_only_listed_codes_and_months(pool: Pool, alerts: Contract) -> None:
    pool.commit(ORG_A, alerts, [
        alert(alerts, "a", "front_company", period="2025-01"),
        alert(alerts, "b", "front_company", period="2025-02"),
        alert(alerts, "c", "unknown", period="2025-03"),
        alert(alerts, "d", "funnel_account", period="2025-03"),
    ])
    p = plan(alerts, [("typology", TYPOLOGIES)],
             {"period": ("2025-02", "2025-03"), "typology": ("front_company", "unknown")})
    # a filtered dimension keeps only the filtered keys (authorise does the same)
    p = dataclasses.replace(p, dimensions=(DimensionPlan(
        "typology", FieldType.CATEGORY, ("front_company", "unknown")),))
    assert pool.engine.aggregate(p, [Part("count")]) == [[1, 1]]


def test_category_lists_are_unnested_and_v1_and_v2_extracts_union(
    pool: Pool, registry: ContractRegistry
) -> None:
    v1, v2 = registry.get("case_records", 1), registry.get("case_records", 2)
    means = v2.field("means_of_control").codes[:3]
    sectors = v2.field("sector").codes[:2]

    def case(contract: Contract, subject: str, listed: list[str] | None,
             sector: str | None = None) -> dict[str, Any]:
        (row,) = valid_rows(contract, 1)
        row.update(subject=token(subject), means_of_control=listed)
        if "sector" in row:
            row["sector"] = sector
        return row

    pool.commit(ORG_A, v1, [case(v1, "p", [means[0], means[1]]), case(v1, "q", None)])
    pool.commit(ORG_B, v2, [case(v2, "p", [means[1]], sectors[0]), case(v2, "r", [], sectors[1])])
    p = plan(v2, [("means_of_control", (*means, None)), ("sector", (*sectors, None))])
    (count, linked) = pool.engine.aggregate(p, [Part("count"), Part("linked_units")])
    grid = list(itertools.product((*means, None), (*sectors, None)))
    got = {k: c for k, c in zip(grid, count, strict=True) if c}
    assert got == {
        (means[0], None): 1, (means[1], None): 1,  # v1 rows: sector unknown
        (None, None): 1,                           # q: no list -> unknown
        (means[1], sectors[0]): 1,
        (None, sectors[1]): 1,                     # r: empty list -> unknown
    }
    assert sum(linked) == 0  # p is at A and B but in different cells
    # a filter on a list field keeps rows listing any of its codes
    only = plan(v2, [("sector", (*sectors, None))], {"means_of_control": (means[1],)})
    assert pool.engine.aggregate(only, [Part("count"), Part("linked_units")]) == [
        [1, 0, 1], [0, 0, 0]]
    # a v2-only field queried when only v1 extracts are visible reads as unknown
    pool.withdraw(ORG_B, pool.ingest.visible_extracts("case_records")[1].id)
    assert pool.engine.aggregate(p, [Part("count")])[0][grid.index((means[0], None))] == 1


def test_sql_has_only_contract_names_and_values_are_parameters(alerts: Contract) -> None:
    p = plan(alerts, [("typology", TYPOLOGIES)], {"period": ("2025-01",)})
    compiled = compile_plan(p, ALL_PARTS, [Path("/x/a.parquet")])
    assert "2025-01" not in compiled.sql and "front_company" not in compiled.sql
    assert "/x/a.parquet" not in compiled.sql
    assert ["2025-01"] in compiled.params and ["/x/a.parquet"] in compiled.params
    quoted = {w for w in compiled.sql.split('"')[1::2]}
    assert quoted <= {f.name for f in alerts.fields}
    # a name that is not a contract field never reaches SQL (authorise refuses it first)
    evil = 'typology" FROM x; DROP TABLE extracts; --'
    bad = dataclasses.replace(p, dimensions=(DimensionPlan(evil, FieldType.CATEGORY, ("a",)),))
    with pytest.raises(InvalidInput, match="not a field"):
        compile_plan(bad, [Part("count")], [])
    with pytest.raises(InvalidInput, match="not a field"):
        compile_plan(p, [Part("sum", evil, CLAMP)], [])
    bad_filter = dataclasses.replace(p, filters=(FilterPlan(evil, FieldType.CATEGORY, ("a",)),))
    with pytest.raises(InvalidInput, match="not a field"):
        compile_plan(bad_filter, [Part("count")], [])


def test_sums_read_the_column_stored_at_commit_only_for_its_own_clamp_and_decimals(
    pool: Pool, alerts: Contract
) -> None:
    pool.commit(ORG_A, alerts, [alert(alerts, "x", amount=12.5), alert(alerts, "y", amount=2.4),
                                alert(alerts, "z", amount=80_000.0)])
    pool.commit(ORG_B, alerts, [alert(alerts, "x", amount=0.5)])
    stored = Part("sum", "amount", CONTRACT_CLAMP, 0)
    per_query = [Part("sum", "amount", CONTRACT_CLAMP, 1), Part("sum", "amount", (0.0, 100.0))]
    p = plan(alerts)
    # ties away from zero (12.5 -> 13, 0.5 -> 1), clamped to 50,000: either way
    assert pool.engine.aggregate(p, [stored, *per_query]) == [
        [13 + 2 + 50_000 + 1], [125 + 24 + 500_000 + 5], [13 + 2 + 100 + 1]]
    files = pool.engine._files("bank_alerts")
    paths, columns, fixed = files.paths, files.columns, files.fixed
    assert set(fixed) == {"amount"} and files.uniform
    sql = compile_plan(p, [stored], paths, columns, fixed=fixed).sql
    assert 'sum(v0)' in sql and '"__fx_amount" AS v0' in sql and "round(" not in sql
    for part in per_query:
        assert '"__fx_amount"' not in compile_plan(p, [part], paths, columns, fixed=fixed).sql
    # one file without the column (e.g. committed by an older hub): every file falls back
    (first, _) = pool.ingest.visible_extracts("bank_alerts")
    path = pool.store.local_path(first.object_key)
    pq.write_table(pq.read_table(path).drop_columns(["__fx_amount"]), path)
    fresh = QueryEngine(store=pool.store, ingest=pool.ingest, settings=pool.settings)
    assert fresh._files("bank_alerts").fixed == {}
    assert fresh.aggregate(p, [stored]) == [[13 + 2 + 50_000 + 1]]


def test_a_filter_on_a_grouped_dimension_restricts_groups_not_rows(
    pool: Pool, alerts: Contract
) -> None:
    pool.commit(ORG_A, alerts, [alert(alerts, "a", "front_company"),
                                alert(alerts, "a", "unknown"),
                                alert(alerts, "b", "funnel_account")])
    keys = ("front_company", "unknown")
    p = dataclasses.replace(
        plan(alerts, [("typology", TYPOLOGIES)], {"typology": keys}),
        dimensions=(DimensionPlan("typology", FieldType.CATEGORY, keys),))
    compiled = compile_plan(p, [Part("count")], [Path("/x/a.parquet")])
    assert "list_contains" not in compiled.sql and list(keys) not in compiled.params
    assert pool.engine.aggregate(p, [Part("count"), Part("count_units")]) == [[1, 1], [1, 1]]


def test_an_extract_without_bounding_columns_is_refused(pool: Pool, alerts: Contract) -> None:
    extract_id = pool.commit(ORG_A, alerts, [alert(alerts, "x")])
    (extract,) = pool.ingest.visible_extracts("bank_alerts")
    path = pool.store.local_path(extract.object_key)
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["__unit", "__seq", "__partner"]), path)
    with pytest.raises(Unavailable, match=f"{extract_id} was committed before") as err:
        fresh = QueryEngine(store=pool.store, ingest=pool.ingest, settings=pool.settings)
        fresh.aggregate(plan(alerts), [Part("count")])
    assert err.value.extra == {"rule": "bounding"}
    assert table.schema.field("__unit").type == pa.int64()


def test_bounding_keeps_as_much_of_late_months_as_of_early_ones(
    pool: Pool, alerts: Contract
) -> None:
    """Monthly rows of a rising flag, committed quarter by quarter (time order): keeping each
    unit's first rows by arrival would keep all of January and little of December. Rows of
    smallest keyed priority are spread over the year; per-period bounds keep every month."""
    months = [f"2025-{m:02d}" for m in range(1, 13)]
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for u in range(600):
        for i, month in enumerate(months):
            for j in range(1 + (i >= 6)):  # one alert a month, two from July on
                by_month[month].append(alert(alerts, f"u{u}", amount=float(i * 10 + j),
                                             period=month))
    for q in range(4):
        pool.commit(ORG_A, alerts, [r for m in months[3 * q:3 * q + 3] for r in by_month[m]])
    p = plan(alerts, [("period", tuple(months))], max_rows=6)
    (kept,) = pool.engine.aggregate(p, [Part("count")])
    assert sum(kept) == 600 * 6  # each unit keeps 6 of its 18 rows: a third of every month
    for q in range(4):  # by arrival order: all of the first quarter, none of the last
        rows = sum(len(by_month[m]) for m in months[3 * q:3 * q + 3])
        share = sum(kept[3 * q:3 * q + 3]) / rows
        assert abs(share - 1 / 3) <= 4 * (1 / 3 * 2 / 3 / rows) ** 0.5 + 0.01, (q, share)
    per_month = dataclasses.replace(plan(alerts, [("period", tuple(months))], max_rows=2),
                                    per_period=True, periods=12)
    (exact,) = pool.engine.aggregate(per_month, [Part("count")])
    assert exact == [len(by_month[m]) for m in months]  # the rise is all there


def test_counts_and_sums_subtract_the_dropped_rows_only_when_they_are_few(
    pool: Pool, alerts: Contract
) -> None:
    """A heavy unit's dropped rows are written once for counts and sums to subtract when they
    are at most a quarter of all rows; more, and the query keeps the rows through the cuts."""
    cache = pool.settings.data_dir / "cache" / "bounds"
    heavy = [alert(alerts, "h", "front_company", float(i)) for i in range(6)]
    light = [alert(alerts, f"l{i}", "unknown", 7.0) for i in range(20)]
    pool.commit(ORG_A, alerts, heavy + light)
    p = plan(alerts, [("typology", TYPOLOGIES)], max_rows=2)
    parts = [Part("count"), Part("sum", "amount", CLAMP, 2)]
    assert run(pool.engine, p, parts) == reference(pool, p, parts)
    (dropped,) = cache.glob("*-drop-*.parquet")
    assert pq.read_table(dropped).num_rows == 4  # 4 of 26 rows: subtracted
    many = plan(alerts, [("typology", TYPOLOGIES)], max_rows=1)  # 5 of 26 rows
    assert run(pool.engine, many, parts) == reference(pool, many, parts)
    assert len(list(cache.glob("*-drop-*.parquet"))) == 2
    pool.commit(ORG_B, alerts, [alert(alerts, "g", "funnel_account", float(i))
                                for i in range(30)])
    # now 29 + 5 of 56 rows are dropped at max_rows=1: the join, and the same numbers
    assert run(pool.engine, many, parts) == reference(pool, many, parts)
    assert list(cache.glob("*-m1-drop-*.none"))
