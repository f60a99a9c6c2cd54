"""The engine's DuckDB SQL as Spark SQL: one definition of every query, two engines.

:mod:`hub.query.sql` and :mod:`hub.query.bounds` write each query once, in DuckDB's dialect,
with its values as bound parameters (``?`` in textual order, or ``$name``). For Apache Spark
(:mod:`hub.engines.spark`) :func:`to_spark` transpiles that text with SQLGlot instead of
keeping a second hand-written copy of the SQL:

* every ``read_parquet(<files>, ...)`` becomes a temporary view of the same files (the
  :class:`Source` s the caller registers first: Spark reads Parquet through its
  DataFrame reader, merging the files' schemas as DuckDB's ``union_by_name`` does);
* every other parameter becomes a typed literal built by SQLGlot (strings are quoted and
  escaped by SQLGlot's Spark generator, never spliced as text; floats are exact
  ``CAST('<repr>' AS DOUBLE)``, so that a clamp or a scale is the same double on both);
* what SQLGlot does not carry over by itself is rewritten on the tree: DuckDB's
  ``list_has_any`` is Spark's ``arrays_overlap``, and ``t.* REPLACE (e AS c)`` is listed
  column by column (Spark has no ``REPLACE``) from the view's own columns.

Anything else Spark cannot run fails there, never silently: the engine's equivalence tests
(tests/hub/test_spark_engine.py) run random plans on both engines and compare them cell by
cell, before noise.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from hub.engines.runner import Params

__all__ = ["Source", "SparkStatement", "to_spark"]


@dataclass(frozen=True)
class Source:
    """A temporary view the statement reads: the Parquet ``files`` it stands for."""

    view: str
    files: tuple[str, ...]
    merge: bool  # files of different columns, matched by name (DuckDB's union_by_name)
    row_number: bool = False  # a ``file_row_number`` column: the row's place in its file


@dataclass(frozen=True)
class SparkStatement:
    """Spark SQL text (values inlined as literals) and the views it reads."""

    sql: str
    sources: tuple[Source, ...]


def to_spark(
    sql: str,
    params: Params,
    columns: Callable[[Source], Sequence[str]],
) -> SparkStatement:
    """``sql`` (DuckDB) with ``params`` (positional for ``?``, by name for ``$name``) as a
    Spark statement (module docstring). ``columns``: the columns of a source, asked only
    when a ``* REPLACE`` must be listed."""
    named = _name_placeholders(sql)
    values: dict[str, Any] = (
        {f"__p{i}": v for i, v in enumerate(params)} if not isinstance(params, Mapping)
        else dict(params))
    tree = sqlglot.parse_one(named, read="duckdb")
    sources: dict[str, Source] = {}  # alias -> source
    listed: list[Source] = []
    for fn in list(tree.find_all(exp.ReadParquet)):
        source = _source(fn, values)
        listed.append(source)
        table = fn.parent
        if not isinstance(table, exp.Table):
            raise ValueError("read_parquet must be a table of a FROM or JOIN")
        table.set("this", exp.to_identifier(source.view))
        if table.alias:
            sources[table.alias] = source
    for ph in list(tree.find_all(exp.Placeholder)):
        name = ph.name
        if name not in values:
            raise ValueError(f"no value for the parameter {name!r}")
        ph.replace(_literal(values[name]))
    for node in list(tree.find_all(exp.ArrayOverlaps)):
        node.replace(exp.Anonymous(this="ARRAYS_OVERLAP",
                                   expressions=[node.this, node.expression]))
    for match in list(tree.find_all(exp.RegexpFullMatch)):
        match.replace(_full_match(match))
    for inf in list(tree.find_all(exp.IsInf)):
        inf.replace(exp.EQ(this=exp.Abs(this=inf.this),
                           expression=exp.cast(exp.Literal.string("Infinity"),
                                               exp.DataType.Type.DOUBLE)))
    for call in list(tree.find_all(exp.Anonymous)):
        if call.name.lower() == "md5_number_lower":
            call.replace(_md5_number_lower(call.expressions[0]))
    for star in list(tree.find_all(exp.Star)):
        if star.args.get("replace"):
            _list_replaced(star, sources, columns)
    return SparkStatement(tree.sql(dialect="spark"), tuple(listed))


def _name_placeholders(sql: str) -> str:
    """``sql`` with its k-th ``?`` written ``$__pk`` (each value then has its own name)."""
    out: list[str] = []
    at = 0
    k = 0
    for token in sqlglot.tokenize(sql, read="duckdb"):
        if token.token_type is TokenType.PLACEHOLDER and token.text == "?":
            out += [sql[at:token.start], f"$__p{k}"]
            at = token.end + 1
            k += 1
    return "".join([*out, sql[at:]])


def _source(fn: exp.ReadParquet, values: Mapping[str, Any]) -> Source:
    first, *options = fn.expressions
    if not isinstance(first, exp.Placeholder) or first.name not in values:
        raise ValueError("read_parquet takes its files as a parameter")
    files = values[first.name]
    files = (files,) if isinstance(files, str) else tuple(str(f) for f in files)

    def option(name: str) -> bool:
        return any(isinstance(o, exp.EQ) and o.this.name == name
                   and isinstance(o.expression, exp.Boolean) and o.expression.this
                   for o in options)

    return Source(f"__tahub_{secrets.token_hex(6)}", files, option("union_by_name"),
                  option("file_row_number"))


def _full_match(match: exp.RegexpFullMatch) -> exp.Expression:
    """DuckDB's ``regexp_full_match(s, 'p')`` as Spark's ``s RLIKE '^(?:p)$'`` (RLIKE finds
    a match anywhere; the engine's patterns are literals, RE2 and Java alike)."""
    pattern = match.expression
    if not isinstance(pattern, exp.Literal) or not pattern.is_string:
        raise ValueError("regexp_full_match takes a literal pattern")
    return exp.RegexpLike(this=match.this,
                          expression=exp.Literal.string(f"^(?:{pattern.this})$"))


def _md5_number_lower(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``md5_number_lower(s)``: bytes 8 to 15 of MD5(s), read little-endian, as an
    unsigned 64-bit number, here a DECIMAL(20, 0) from the hexadecimal digest."""
    digest = exp.MD5(this=value)
    pairs = [exp.Substring(this=digest.copy(), start=exp.Literal.number(at),
                           length=exp.Literal.number(2)) for at in range(31, 16, -2)]
    number = exp.Anonymous(this="CONV", expressions=[
        exp.Concat(expressions=pairs), exp.Literal.number(16), exp.Literal.number(10)])
    return exp.cast(number, exp.DataType.build("DECIMAL(20, 0)"))


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool) or value is None:
        return exp.Boolean(this=value) if value is not None else exp.Null()
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, int):
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.BIGINT)
    if isinstance(value, float):
        return exp.cast(exp.Literal.string(repr(value)), exp.DataType.Type.DOUBLE)
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[_literal(v) for v in value])
    raise TypeError(f"no Spark literal for a {type(value).__name__}")


def _list_replaced(star: exp.Star, sources: Mapping[str, Source],
                   columns: Callable[[Source], Sequence[str]]) -> None:
    """``t.* REPLACE (e AS c, ...)`` as ``t.a, e AS c, t.b, ...`` (in the view's order)."""
    column = star.parent
    if not isinstance(column, exp.Column) or column.table not in sources:
        raise ValueError("* REPLACE needs a qualified read_parquet source")
    table = column.table
    replaced = {a.alias: a for a in star.args["replace"]}
    items: list[exp.Expression] = []
    for name in columns(sources[table]):
        items.append(replaced.pop(name) if name in replaced
                     else exp.column(exp.to_identifier(name, quoted=True), table=table))
    if replaced:
        raise ValueError(f"* REPLACE of columns the source lacks: {sorted(replaced)}")
    select = column.parent
    if not isinstance(select, exp.Select):
        raise ValueError("* REPLACE outside a select list")
    at = select.expressions.index(column)
    select.set("expressions", [*select.expressions[:at], *items, *select.expressions[at + 1:]])
