"""The DuckDB -> Spark SQL transpiler (hub.engines.dialect) on the engine's real statements:
values become literals at their own placeholders, files become views, and no value can
change the statement's shape. (That Spark computes the same aggregates as DuckDB is
tests/hub/test_spark_engine.py, on a real cluster.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from hub.contracts.model import ContractRegistry
from hub.engines.dialect import Source, to_spark
from hub.query.sql import Part, compile_plan
from tests.hub.pooled import plan

FILES = [Path("/data/a.parquet"), Path("/data/b.parquet")]
COLUMNS = ["subject", "typology", "amount", "period", "__unit", "__seq", "__partner", "__prio"]


def no_columns(source: Source) -> list[str]:
    raise AssertionError(f"no * REPLACE here, yet asked for the columns of {source}")


def literals(sql: str) -> list[str]:
    """The string literals of a Spark statement, as Spark's parser reads them."""
    return [lit.this for lit in sqlglot.parse_one(sql, read="spark").find_all(exp.Literal)
            if lit.is_string]


@pytest.fixture(scope="module")
def registry_() -> ContractRegistry:
    return ContractRegistry.load()


def test_files_become_views_and_values_literals_in_their_own_places(
    registry_: ContractRegistry,
) -> None:
    alerts = registry_.get("bank_alerts", 1)
    p = plan(alerts, [("typology", ("front_company", "unknown"))],
             {"period": ("2025-01",)}, max_rows=3)
    compiled = compile_plan(p, [Part("count"), Part("sum", "amount", (10.0, 1000.0), 2)],
                            FILES, cuts=Path("/cache/cuts.parquet"))
    stmt = to_spark(compiled.sql, compiled.params, no_columns)
    assert [s.files for s in stmt.sources] == [tuple(map(str, FILES)), ("/cache/cuts.parquet",)]
    assert [s.merge for s in stmt.sources] == [True, False]
    assert "read_parquet" not in stmt.sql.lower() and "?" not in stmt.sql
    for source in stmt.sources:
        assert source.view in stmt.sql
    # the clamp and the scale are exact doubles, at the places DuckDB binds them
    assert "GREATEST(CAST(`amount` AS DOUBLE), CAST('10.0' AS DOUBLE))" in stmt.sql
    assert "* CAST('100.0' AS DOUBLE)" in stmt.sql
    assert "ARRAY_CONTAINS(CAST(ARRAY('2025-01') AS ARRAY<STRING>), `period`)" in stmt.sql


def test_category_lists_unnest_with_spark_functions(registry_: ContractRegistry) -> None:
    cases = registry_.get("case_records", 2)
    lists = [f.name for f in cases.fields if f.type.value == "category_list"]
    name = lists[0]
    keys = cases.field(name).codes[:2]
    p = plan(cases, [(name, (*keys, None))], {name: keys})
    compiled = compile_plan(p, [Part("count")], FILES)
    sql = to_spark(compiled.sql, compiled.params, no_columns).sql
    assert "LATERAL VIEW EXPLODE(" in sql and "SIZE(ARRAY_DISTINCT(" in sql
    assert f"ARRAYS_OVERLAP(`{name}`, CAST(ARRAY(" in sql and "&&" not in sql


def test_star_replace_is_listed_from_the_views_columns() -> None:
    sql = ("SELECT * FROM (SELECT __r.* REPLACE (coalesce(__m.__person, __r.__unit) AS __unit),"
           " __r.__unit AS __origin FROM read_parquet(?, union_by_name = true) AS __r "
           "LEFT JOIN read_parquet(?) AS __m ON __m.__unit = __r.__unit)")
    asked: list[Source] = []

    def columns(source: Source) -> list[str]:
        asked.append(source)
        return COLUMNS

    stmt = to_spark(sql, [[str(f) for f in FILES], "/cache/persons.parquet"], columns)
    assert [s.files for s in asked] == [tuple(map(str, FILES))]
    select = sqlglot.parse_one(stmt.sql, read="spark").find(exp.Subquery)
    assert select is not None
    names = [e.alias_or_name for e in select.this.expressions]
    assert names == [*COLUMNS, "__origin"]
    assert "COALESCE(__m.__person, __r.__unit) AS __unit" in stmt.sql


def test_named_parameters_are_bound_by_name() -> None:
    named = to_spark("SELECT count(*) FROM read_parquet($files) AS t WHERE t.x > $lo",
                     {"files": ["/a.parquet"], "lo": 3}, no_columns)
    assert "CAST('3' AS BIGINT)" in named.sql
    assert named.sources[0].files == ("/a.parquet",)


def test_a_value_without_a_parameter_or_files_outside_one_are_refused() -> None:
    with pytest.raises(ValueError, match="no value"):
        to_spark("SELECT $missing", {}, no_columns)
    with pytest.raises(ValueError, match="files as a parameter"):
        to_spark("SELECT * FROM read_parquet('/etc/passwd')", [], no_columns)


@given(st.text(min_size=0, max_size=30))
def test_no_filter_value_changes_the_statement(value: str) -> None:
    """Quotes, backslashes, comment marks and any unicode stay one string literal."""
    value = value.replace("\x00", "")
    stmt = to_spark("SELECT k FROM read_parquet(?) AS t WHERE list_contains(CAST(? AS "
                    "VARCHAR[]), t.k)", [["/a.parquet"], [value, "x"]], no_columns)
    assert literals(stmt.sql) == [value, "x"]


def test_the_commit_statements_functions_have_spark_forms() -> None:
    """What the contract's checks and the priorities use (hub.ingest.clustered): a full
    regular-expression match is an anchored RLIKE, infinity an equality, DuckDB's
    md5_number_lower a conversion of the digest's bytes 8-15 read little-endian, and a
    file's row numbers Spark's row index (tests/hub/test_spark_commit.py runs them)."""
    stmt = to_spark("SELECT regexp_full_match(s, '\\d{4}|x'), isinf(d), md5_number_lower(s), "
                    "file_row_number FROM read_parquet(?, file_row_number = true)",
                    [[str(FILES[0])]], no_columns)
    (source,) = stmt.sources
    assert source.row_number and source.files == (str(FILES[0]),)
    tree = sqlglot.parse_one(stmt.sql, read="spark")
    (match,) = tree.find_all(exp.RegexpLike)
    assert match.expression.this == "^(?:\\d{4}|x)$"
    assert "ABS(d) = CAST('Infinity' AS DOUBLE)" in stmt.sql
    assert "CAST(CONV(CONCAT(SUBSTRING(MD5(s), 31, 2), SUBSTRING(MD5(s), 29, 2)" in stmt.sql
    assert "SUBSTRING(MD5(s), 17, 2)), 16, 10) AS DECIMAL(20, 0))" in stmt.sql
    with pytest.raises(ValueError, match="literal pattern"):
        to_spark("SELECT regexp_full_match(s, p) FROM t", [], no_columns)
