"""Persons across partners and datasets (hub.ingest.linkage): units that share an identifier
are one person for bounding, distinct units and linked units. Real extracts committed through
the real IngestService, read by real DuckDB, against a plain-Python union-find reference."""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hub.contracts.model import Contract, ContractRegistry
from hub.errors import ExtractInvalid
from hub.ingest.linkage import PERSON_COLUMN, LinkIndex, LinkSource
from hub.query.sql import Part
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import token, valid_rows
from tests.hub.pooled import ORG_C, ORGS, Pool, plan

TYPOLOGIES = ("front_company", "exploitative_employment", "funnel_account",
              "alternative_payment", "unknown")
IDS = ("subject", "customer_phone", "customer_email")


@pytest.fixture
def pool(tmp_path: Path, migrated_db: Path, registry: ContractRegistry) -> Iterator[Pool]:
    p = Pool.create(tmp_path, migrated_db, registry)
    yield p
    p.close()


@pytest.fixture(scope="module")
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 2)


def alert(contract: Contract, iban: str | None = None, phone: str | None = None,
          email: str | None = None, typology: str = "unknown") -> dict[str, Any]:
    (row,) = valid_rows(contract, 1)
    row.update(subject=token("iban:" + iban) if iban else None,
               customer_phone=token("phone:" + phone) if phone else None,
               customer_email=token("mail:" + email) if email else None,
               typology=typology, amount=50.0)
    return row


# -- the reference ----------------------------------------------------------------------------
def stored(pool: Pool, dataset: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for extract in pool.ingest.visible_extracts(dataset):
        rows += pq.read_table(pool.store.local_path(extract.object_key)).to_pylist()
    return rows


def union_find(pairs: Iterable[tuple[Any, Any]]) -> Callable[[Any], Any]:
    """The root finder of the components the pairs join (plain Python, no DuckDB)."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    return find


def persons_of(rows: list[dict[str, Any]], identifiers: tuple[str, ...] = IDS) -> dict[int, int]:
    """__unit -> person (the smallest __unit of its connected component), by union-find over
    the rows' identifiers: the definition in docs/privacy.md, in plain Python."""
    find = union_find((("id", name, row[name]), ("unit", row["__unit"]))
                      for row in rows for name in identifiers if row.get(name) is not None)
    members: dict[Any, list[int]] = defaultdict(list)
    for row in rows:
        members[find(("unit", row["__unit"]))].append(row["__unit"])
    return {u: min(us) for us in members.values() for u in us}


def reference(rows: list[dict[str, Any]], max_rows: int) -> dict[str, list[int]]:
    """count, count_units and linked_units per typology, bounding each person to its
    ``max_rows`` rows of smallest (priority, own unit)."""
    person = persons_of(rows)
    by_person: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_person[person[row["__unit"]]].append(row)
    count = [0] * len(TYPOLOGIES)
    partners: list[dict[int, set[str]]] = [defaultdict(set) for _ in TYPOLOGIES]
    for p, group in by_person.items():
        for row in sorted(group, key=lambda r: (r["__prio"], r["__unit"]))[:max_rows]:
            cell = TYPOLOGIES.index(row["typology"])
            count[cell] += 1
            partners[cell][p].add(row["__partner"])
    return {"count": count, "units": [len(c) for c in partners],
            "linked": [sum(len(orgs) >= 2 for orgs in c.values()) for c in partners]}


PARTS = [Part("count"), Part("count_units"), Part("linked_units")]


def aggregate(pool: Pool, contract: Contract, max_rows: int,
              per_period: bool = False) -> dict[str, list[int]]:
    p = dataclasses.replace(plan(contract, [("typology", TYPOLOGIES)], max_rows=max_rows),
                            per_period=per_period)
    count, units, linked = pool.engine.aggregate(p, PARTS)
    return {"count": count, "units": units, "linked": linked}


# -- examples ---------------------------------------------------------------------------------
def test_the_same_person_at_two_banks_and_a_money_transfer_firm_is_one_unit(
    pool: Pool, alerts: Contract
) -> None:
    # bank A knows IBAN a1 and phone P; bank B knows IBAN b1 and phone P; the money-transfer
    # firm (C) knows phone P only. Bank B's other customer shares nothing.
    pool.commit(ORG_A, alerts, [alert(alerts, "a1", "P", typology="funnel_account"),
                                alert(alerts, "a1", None, typology="front_company")])
    pool.commit(ORG_B, alerts, [alert(alerts, "b1", "P", typology="funnel_account"),
                                alert(alerts, "b2", None, "x@y", typology="funnel_account")])
    pool.commit(ORG_C, alerts, [alert(alerts, None, "P", typology="funnel_account")])
    got = aggregate(pool, alerts, max_rows=10)
    funnel = TYPOLOGIES.index("funnel_account")
    assert got["count"][funnel] == 4
    assert got["units"][funnel] == 2  # the linked person and b2, not four units
    assert got["linked"][funnel] == 1  # the person is seen at A, B and C
    assert got == reference(stored(pool, "bank_alerts"), 10)
    # bounded as one person: 5 rows in all, 2 kept whichever bank they came from
    bounded = aggregate(pool, alerts, max_rows=2)
    assert sum(bounded["count"]) == 2 + 1
    assert bounded == reference(stored(pool, "bank_alerts"), 2)
    # an exact plan over public rows (hub.query.exact) neither links nor bounds: every row,
    # and each partner's token its own unit, whatever identifiers other rows share
    exact = dataclasses.replace(plan(alerts, [("typology", TYPOLOGIES)], max_rows=2),
                                public_rows="public register")
    count, units, linked = pool.engine.aggregate(exact, PARTS)
    assert (count[funnel], units[funnel], linked[funnel], sum(count)) == (4, 4, 0, 5)


def test_links_across_datasets_join_persons_and_withdrawal_splits_them_again(
    pool: Pool, alerts: Contract, registry: ContractRegistry
) -> None:
    # two bank customers, then a money-transfer record (corridor_flows) from one's phone,
    # then a money-transfer firm's alerts that tie both phones to one e-mail address
    flows = registry.get("corridor_flows")
    pool.commit(ORG_A, alerts, [alert(alerts, "a1", "P1", typology="funnel_account"),
                                alert(alerts, "a2", "P2", typology="funnel_account")])
    (flow,) = valid_rows(flows, 1)
    flow["sender"] = token("phone:P1")
    pool.commit(ORG_B, flows, [flow])
    assert aggregate(pool, alerts, 10)["units"][TYPOLOGIES.index("funnel_account")] == 2
    bridge = pool.commit(ORG_B, alerts, [alert(alerts, None, "P2", "shared@x"),
                                         alert(alerts, None, "P1", "shared@x")])
    got = aggregate(pool, alerts, 10)
    assert got["units"][TYPOLOGIES.index("funnel_account")] == 1
    assert got == reference(stored(pool, "bank_alerts"), 10)
    pool.withdraw(ORG_B, bridge)
    assert aggregate(pool, alerts, 10)["units"][TYPOLOGIES.index("funnel_account")] == 2


def test_a_row_without_any_identifier_is_refused_with_the_fields_it_could_have(
    pool: Pool, alerts: Contract
) -> None:
    with pytest.raises(ExtractInvalid) as caught:
        pool.commit(ORG_A, alerts, [alert(alerts, "a1"), alert(alerts, None, None, None)])
    (error,) = caught.value.errors
    assert (error.row, error.field) == (2, "subject")
    assert "customer_phone" in error.reason and "customer_email" in error.reason


# -- property: engine == reference --------------------------------------------------------------
row_strategy = st.fixed_dictionaries({
    "iban": st.none() | st.sampled_from("abcd"),
    "phone": st.none() | st.sampled_from("PQ"),
    "email": st.none() | st.sampled_from("E"),
    "typology": st.sampled_from(TYPOLOGIES[:3]),
}).filter(lambda r: r["iban"] or r["phone"] or r["email"])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(commits=st.lists(st.tuples(st.sampled_from(ORGS), st.lists(row_strategy, min_size=1,
                                                                    max_size=8)),
                        min_size=1, max_size=4),
       withdraw=st.sets(st.integers(0, 3), max_size=1), max_rows=st.integers(1, 4))
def test_every_measure_counts_persons_as_the_union_find_reference(
    migrated_db: Path, registry: ContractRegistry, alerts: Contract,
    commits: list[tuple[str, list[dict[str, Any]]]], withdraw: set[int], max_rows: int,
) -> None:
    as_rows = [(org, [alert(alerts, r["iban"], r["phone"], r["email"], r["typology"])
                      for r in rows]) for org, rows in commits]
    assume(len({(org, str(rows)) for org, rows in as_rows}) == len(as_rows))
    with tempfile.TemporaryDirectory() as tmp:
        pool = Pool.create(Path(tmp), migrated_db, registry)
        try:
            ids = [pool.commit(org, alerts, rows) for org, rows in as_rows]
            for i in withdraw:
                if i < len(ids):
                    pool.withdraw(as_rows[i][0], ids[i])
            got = aggregate(pool, alerts, max_rows)
            per_period = aggregate(pool, alerts, max_rows, per_period=True)
            want = reference(stored(pool, "bank_alerts"), max_rows)
        finally:
            pool.close()
    assert got == want
    assert per_period == want  # one period: per-period bounds equal total bounds


# -- the index alone ----------------------------------------------------------------------------
def _extract(folder: Path, name: str, rows: Sequence[tuple[int, str | None, str | None]]) -> Path:
    path = folder / f"{name}.parquet"
    pq.write_table(pa.table({
        "__unit": pa.array([u for u, _, _ in rows], pa.int64()),
        "subject": pa.array([s for _, s, _ in rows], pa.string()),
        "customer_phone": pa.array([p for _, _, p in rows], pa.string()),
    }), path)
    return path


IDENT = (("subject", "iban"), ("customer_phone", "phone"))


def _random_sources(folder: Path, seed: int, extracts: int = 6) -> list[LinkSource]:
    rng = random.Random(seed)  # noqa: S311 - test data, not noise
    out = []
    for i in range(extracts):
        rows = []
        for _ in range(rng.randint(1, 40)):
            unit = rng.randint(1, 60)
            rows.append((unit, f"s{unit}", rng.choice([None, None, f"p{rng.randint(1, 25)}"])))
        dataset = "bank_alerts" if i % 3 else "corridor_flows"
        out.append(LinkSource(dataset, f"ext_{seed}_{i}", _extract(folder, f"e{seed}-{i}", rows),
                              IDENT))
    return out


def _maps(maps: dict[str, Path | None]) -> dict[str, dict[int, int]]:
    return {d: ({} if p is None else dict(zip(*pq.read_table(p).to_pydict().values(),
                                              strict=True)))
            for d, p in maps.items()}


def _expected(sources: list[LinkSource]) -> dict[str, dict[int, int]]:
    """Per dataset: unit -> person for units whose person is another unit (reference)."""
    rows = []
    for s in sources:
        for r in pq.read_table(s.path).to_pylist():
            rows.append({"__unit": (s.dataset, r["__unit"]), "subject": r["subject"],
                         "customer_phone": r["customer_phone"]})
    find = union_find(((kind, r[name]), r["__unit"])
                      for r in rows for name, kind in IDENT if r[name] is not None)
    comps: dict[Any, set[tuple[str, int]]] = defaultdict(set)
    for r in rows:
        comps[find(r["__unit"])].add(r["__unit"])
    out: dict[str, dict[int, int]] = {s.dataset: {} for s in sources}
    for units in comps.values():
        for d in {d for d, _ in units}:
            mine = sorted(u for e, u in units if e == d)
            out[d].update({u: mine[0] for u in mine[1:]})
    return out


@pytest.mark.parametrize("seed", range(4))
def test_incremental_resolution_equals_resolution_from_scratch(tmp_path: Path, seed: int) -> None:
    sources = _random_sources(tmp_path, seed)
    step = LinkIndex(tmp_path / "step")
    for n in range(1, len(sources) + 1):  # one extract at a time: the incremental path
        got = _maps(step.resolve(sources[:n]))
        assert got == _expected(sources[:n])
    scratch = LinkIndex(tmp_path / "scratch")
    assert _maps(scratch.resolve(list(reversed(sources)))) == got
    # a withdrawal rebuilds: the same as an index that never saw the extract
    kept = sources[:2] + sources[3:]
    assert _maps(step.resolve(kept)) == _expected(kept)


def test_removing_one_person_leaves_every_other_person_as_it_was(tmp_path: Path) -> None:
    """The stability the privacy argument needs: a neighbouring dataset without one person
    (one whole component, all its rows) gives every other unit the same person."""
    sources = _random_sources(tmp_path, 7, extracts=4)
    full = _maps(LinkIndex(tmp_path / "full").resolve(sources))
    rows = {s.extract_id: pq.read_table(s.path).to_pylist() for s in sources}
    # the component of unit 1 of the first bank extract
    target = next(s for s in sources if s.dataset == "bank_alerts")
    seed_unit = rows[target.extract_id][0]["__unit"]
    person = full[target.dataset].get(seed_unit, seed_unit)
    members = {u for u, p in full[target.dataset].items() if p == person} | {person}
    tokens = {v for r in rows[target.extract_id] + [r for s in sources if s.dataset ==
              target.dataset for r in rows[s.extract_id]] if r["__unit"] in members
              for v in (r["subject"], r["customer_phone"]) if v}
    removed_units: dict[str, set[int]] = defaultdict(set)
    changed = True
    while changed:  # close over tokens: the whole component, in every dataset
        changed = False
        for s in sources:
            for r in rows[s.extract_id]:
                ids = {v for v in (r["subject"], r["customer_phone"]) if v}
                if (ids & tokens or r["__unit"] in removed_units[s.dataset]) and not (
                        ids <= tokens and r["__unit"] in removed_units[s.dataset]):
                    tokens |= ids
                    removed_units[s.dataset].add(r["__unit"])
                    changed = True
    neighbour = []
    for s in sources:
        left = [(r["__unit"], r["subject"], r["customer_phone"]) for r in rows[s.extract_id]
                if r["__unit"] not in removed_units[s.dataset]]
        if left:
            neighbour.append(dataclasses.replace(
                s, extract_id=s.extract_id + "-n",
                path=_extract(tmp_path, s.extract_id + "-n", left)))
    smaller = _maps(LinkIndex(tmp_path / "neighbour").resolve(neighbour))
    for dataset, mapping in full.items():
        rest = {u: p for u, p in mapping.items() if u not in removed_units[dataset]}
        assert smaller.get(dataset, {}) == rest


def test_a_stop_listed_identifier_links_nothing_and_large_persons_are_reported(
    tmp_path: Path
) -> None:
    hub_phone = "phone-of-a-call-centre"
    rows = [(u, f"s{u}", hub_phone) for u in range(1, 61)] + [(61, "s61", "p61"),
                                                              (62, "s62", "p61")]
    sources = [LinkSource("bank_alerts", "e1", _extract(tmp_path, "e1", rows), IDENT)]
    index = LinkIndex(tmp_path / "a", max_tokens=50)
    (mapping,) = _maps(index.resolve(sources)).values()
    assert set(mapping.values()) == {1, 61}  # 60 accounts through one phone: one person
    report = index.report(sources)
    assert (report.persons, report.merged_persons, report.over_cap) == (2, 2, 1)
    assert report.largest == 61 and report.oversized[0]["units"] == 60
    # the identifier most of its units share comes first: the one to stop-list
    shared = report.oversized[0]["shared"]
    assert isinstance(shared, list)
    assert shared[0] == {"kind": "phone", "token": hub_phone, "units": 60}
    stopped = LinkIndex(tmp_path / "b", max_tokens=50, stop_list=frozenset({hub_phone}))
    (mapping,) = _maps(stopped.resolve(sources)).values()
    assert mapping == {62: 61}
    assert stopped.report(sources).over_cap == 0


def test_the_person_maps_hold_only_units_that_moved(tmp_path: Path) -> None:
    sources = [LinkSource("bank_alerts", "e1", _extract(tmp_path, "e1", [
        (1, "s1", None), (2, "s2", "p"), (3, "s3", "p"), (3, "s3", None)]), IDENT)]
    maps = LinkIndex(tmp_path / "i").resolve(sources)
    path = maps["bank_alerts"]
    assert path is not None
    table = pq.read_table(path)
    assert table.column_names == ["__unit", PERSON_COLUMN]
    assert table.to_pylist() == [{"__unit": 3, PERSON_COLUMN: 2}]
    alone = [LinkSource("bank_alerts", "e2", _extract(tmp_path, "e2", [(1, "s1", "q")]), IDENT)]
    assert LinkIndex(tmp_path / "j").resolve(alone) == {"bank_alerts": None}


def test_unit_ids_are_numbered_by_each_rows_first_identifier(pool: Pool, alerts: Contract) -> None:
    pool.commit(ORG_A, alerts, [alert(alerts, None, "P"), alert(alerts, None, "P", "e"),
                                alert(alerts, "a", "P")])
    rows = stored(pool, "bank_alerts")
    units = [r["__unit"] for r in rows]
    assert units[0] == units[1] != units[2]  # anchors: P, P, then a
    assert len(set(persons_of(rows).values())) == 1


def test_admin_links_reports_shared_identifiers_and_the_stop_list_removes_them(
    pool: Pool, alerts: Contract, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app

    pool.commit(ORG_A, alerts, [alert(alerts, f"acct{i}", "call-centre") for i in range(12)]
                + [alert(alerts, "solo", "own-phone")])
    env = {"TAHUB_DATA_DIR": str(pool.settings.data_dir), "TAHUB_LOG_LEVEL": "WARNING",
           "TAHUB_LINK_MAX_TOKENS": "10"}
    result = CliRunner().invoke(app, ["admin", "links", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["persons"], report["merged_persons"], report["over_cap"]) == (2, 1, 1)
    (big,) = report["oversized"]
    assert big["units"] == 12 and big["shared"][0] == {
        "kind": "phone", "token": token("phone:call-centre"), "units": 12}
    stop = tmp_path / "stop.txt"
    stop.write_text(f"# a call centre (reviewed 2026-12-06)\n{big['shared'][0]['token']}\n")
    result = CliRunner().invoke(app, ["admin", "links", "--json"],
                                env={**env, "TAHUB_LINK_STOP_LIST": str(stop)})
    report = json.loads(result.stdout)
    assert (report["persons"], report["over_cap"]) == (13, 0)
    shown = CliRunner().invoke(app, ["admin", "links"], env=env)
    assert shown.exit_code == 0 and "likely shared identifiers" in shown.stdout


def test_only_datasets_whose_units_can_join_others_are_resolved(pool: Pool) -> None:
    # bank_alerts has three identifiers; corridor_flows' sender phone meets its phones;
    # case_records is keyed by one document number that no other dataset has
    assert pool.ingest.linkable() == {"bank_alerts", "corridor_flows"}
    assert pool.ingest.persons("case_records") is None
