"""The connector checks each field's distinct values with the hub's query: same verdicts.

``connectors.partner.checking`` runs ``hub.contracts.validation.validation_sql`` over each
field's distinct values instead of over every row. This holds that the problems it finds
are exactly those of the hub's query run row by row over the same parsed rows (plus the
cells that could not be parsed, which stand for their field), on generated exports with
corrupted cells.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.partner.checking import collect_problems
from connectors.partner.convert import problem_column
from connectors.partner.mapping import parse_mapping
from connectors.partner.pipeline import read_export
from connectors.partner.sources import open_duckdb
from connectors.partner.template import mapping_template
from hub.contracts.model import ContractRegistry
from hub.contracts.validation import ERRORS_COLUMN, Side, quote_ident, validation_sql
from tests.strategies import corruptions, valid_rows

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Problem = tuple[int, str, str, str | None]


@PROPERTY
@given(data=st.data())
def test_distinct_checks_equal_the_row_by_row_query(
    registry: ContractRegistry, data: st.DataObject
) -> None:
    contract = data.draw(st.sampled_from(list(registry)))
    rows = data.draw(st.lists(valid_rows(contract), min_size=1, max_size=8))
    for _ in range(data.draw(st.integers(0, 4))):
        bad = data.draw(corruptions(contract))
        at = data.draw(st.integers(0, len(rows) - 1))
        rows[at] = {**rows[at], bad.field: bad.value}
    mapping = parse_mapping(mapping_template(contract), registry)
    names = [f.name for f in contract.extract_fields]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            writer.writerows([[r[n] if r[n] is not None else "" for n in names] for r in rows])
        con = open_duckdb([Path(folder)], temp_dir=Path(folder))
        try:
            src, parsed = read_export(con, path, contract, mapping, lambda _s: None)
            problems = collect_problems(con, contract, parsed, src.bad_lines, tokens=dict)
            mine = set(con.execute(
                f"SELECT __rank, field, reason, value FROM {problems.table}"
            ).fetchall())
            row_by_row = con.execute(
                f"SELECT __row, e.field, e.reason, e.value FROM (SELECT __row, "
                f"unnest({ERRORS_COLUMN}) AS e FROM "
                f"({validation_sql(contract, parsed.table, Side.PARTNER)}))"
            ).fetchall()
            unparsed: set[Problem] = set()
            for name in parsed.parse_fields:
                column = quote_ident(problem_column(name))
                unparsed |= set(con.execute(
                    f"SELECT __row, '{name}', {column}.reason, {column}.value "
                    f"FROM {parsed.table} WHERE {column} IS NOT NULL"
                ).fetchall())
        finally:
            con.close()
    stood_for = {(row, name) for row, name, _r, _v in unparsed}
    expected = {p for p in row_by_row if (p[0], p[1]) not in stood_for} | unparsed
    assert mine == expected
