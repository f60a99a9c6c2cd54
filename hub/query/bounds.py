"""Which rows each unit keeps: its ``m`` rows of smallest keyed priority (contribution bounding).

At commit every row got ``__prio``, a keyed pseudo-random number unique per unit
(:mod:`hub.ingest.units`). A unit keeps the ``m`` rows with the smallest ``__prio`` among
all its visible rows (``m`` = the policy's ``max_rows``), or, with per-period bounding, the
``m`` smallest in each period. Most units have no more than ``m`` rows and keep them all, so
only the *heavy* units need a cut: for each of them, the ``m``-th smallest priority, the
largest one it keeps. A query then keeps a row when its unit has no cut or when its
priority is at most the cut (one hash join with the heavy units, usually a small table).

The cuts depend on the visible extracts and on the bound, not on the query: they are
computed once per (dataset, visible extracts, bound) by one DuckDB statement and kept as a
Parquet file under ``<data_dir>/cache/bounds/``, which every later query of that state
reads. Heavy units are found cheaply with the total bound (a row with ``__seq > m`` exists:
``__seq`` is the unit's ordinal; after a withdrawal a unit may look heavy without being so,
and then its cut keeps all its rows); per period, by counting rows per (unit, period).

When units are linked into persons (:mod:`hub.ingest.linkage`), the unit here is the
person: rows are read through :func:`persons_source` (``__unit`` replaced by the person,
the row's own unit kept as ``__origin``), every person of several units is a candidate
heavy unit, and the cut is the ``m``-th smallest (priority, origin) pair, unique per person.

Dropped rows: for a query of counts and sums only, adding up the kept rows is the same as
adding up all the rows and taking away those the cuts drop, and the second is what a query
can do without joining every row with the cuts. :meth:`BoundCuts.dropped` writes, once per
dataset state and bound like the cuts, the dropped rows themselves (whole rows, the columns
of the extracts) to a Parquet file under the same folder, unless they are more than a quarter
of all rows (then the join is the cheaper way and queries keep it). :mod:`hub.query.engine`
subtracts the dropped rows' aggregates from the unbounded ones, per group, in exact integers.

Privacy: a unit's cut is a function of its own rows only, so the kept rows of every other
unit are the same whether or not it is in the data; each unit keeps at most ``m`` rows (per
period). Extracts committed before priorities existed read ``__seq`` as their priority.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.contracts.validation import quote_ident
from hub.engines.runner import Location, Runner
from hub.ingest.linkage import PERSON_COLUMN
from hub.ingest.units import PRIO_COLUMN, SEQ_COLUMN, UNIT_COLUMN

__all__ = [
    "CUT_COLUMN",
    "CUT_ORIGIN_COLUMN",
    "CUT_ROWS_COLUMN",
    "ORIGIN_COLUMN",
    "PERIOD_KEY",
    "Bound",
    "BoundCuts",
    "kept_sql",
    "period_key",
    "persons_source",
    "prio_sql",
]

CUT_COLUMN = "__cut"
CUT_ORIGIN_COLUMN = "__cut_origin"
#: A heavy unit's number of rows (in the period), in the cut file: it keeps ``max_rows``.
CUT_ROWS_COLUMN = "__n"
#: A row's own ``__unit`` (before persons replaced it), the tie-break of priorities.
ORIGIN_COLUMN = "__origin"
PERIOD_KEY = "__p"
#: Cut files of older dataset states are removed once this old (a query may still read one).
_STALE_SECONDS = 3600
#: Dropped rows are written, for queries to subtract, only up to this share of all rows.
_DROPPED_SHARE = 0.25


def period_key(field: str, alias: str | None = None) -> str:
    """A row's period as the cut tables key it: text, with unknown (NULL) as chr(0), so that
    the rows of an unknown period are one period too, bounded like the others."""
    col = (f"{alias}." if alias else "") + quote_ident(field)
    return f"coalesce(CAST({col} AS VARCHAR), chr(0))"


def persons_source(source: str, persons: str) -> str:
    """``source`` (a relation of canonical rows) with each row's ``__unit`` replaced by its
    person (:mod:`hub.ingest.linkage`; ``persons`` the map's path as SQL) and its own unit
    kept as ``__origin``."""
    return (f"(SELECT __r.* REPLACE (coalesce(__m.{PERSON_COLUMN}, __r.{UNIT_COLUMN}) "
            f"AS {UNIT_COLUMN}), __r.{UNIT_COLUMN} AS {ORIGIN_COLUMN} FROM {source} AS __r "
            f"LEFT JOIN read_parquet({persons}) AS __m ON __m.{UNIT_COLUMN} = __r.{UNIT_COLUMN})")


def prio_sql(columns: frozenset[str] | None, row: str) -> str:
    """A row's priority (``row`` its alias; ``columns`` those of its files, None: all)."""
    if columns is None or PRIO_COLUMN in columns:
        return f"coalesce({row}.{PRIO_COLUMN}, {row}.{SEQ_COLUMN})"
    return f"CAST({row}.{SEQ_COLUMN} AS BIGINT)"


def _tmp(path: Path) -> Path:
    """Where one thread writes ``path`` before it takes its place (queries run in threads,
    in processes of several hosts when the folder is shared with a Spark cluster)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}."
                          f"{secrets.token_hex(4)}.tmp")


def _source(paths: Sequence[Location], persons: Path | None) -> tuple[dict[str, object], str]:
    """The parameters and SQL relation of the canonical rows of ``paths``, read through the
    person map when there is one."""
    params: dict[str, object] = {"files": [str(p) for p in paths]}
    src = "read_parquet($files, union_by_name = true)"
    if persons is not None:
        src = persons_source(src, "$persons")
        params["persons"] = str(persons)
    return params, src


def kept_sql(prio: str, row: str, cut: str, linked: bool) -> str:
    """Whether a row is kept: no cut for its unit, or (priority, origin) up to the cut."""
    if not linked:  # priorities are unique per unit: the priority alone decides
        return f"({cut}.{CUT_COLUMN} IS NULL OR {prio} <= {cut}.{CUT_COLUMN})"
    return (f"({cut}.{CUT_COLUMN} IS NULL OR {prio} < {cut}.{CUT_COLUMN} OR "
            f"({prio} = {cut}.{CUT_COLUMN} AND {row}.{ORIGIN_COLUMN} <= "
            f"{cut}.{CUT_ORIGIN_COLUMN}))")


@dataclass(frozen=True, slots=True)
class Bound:
    """``max_rows`` per unit, in total or per value of ``period`` (a field name)."""

    max_rows: int
    period: str | None = None

    @property
    def tag(self) -> str:
        return f"m{self.max_rows}" + (f"-p-{self.period}" if self.period else "")


class BoundCuts:
    """The cut files of every dataset state and bound (module docstring)."""

    def __init__(self, folder: Path, runner: Runner) -> None:
        self._folder = folder
        self._runner = runner

    def cuts(self, dataset: str, extract_ids: Sequence[str], paths: Sequence[Location],
             columns: frozenset[str], bound: Bound,
             persons: Path | None = None) -> Path | None:
        """The Parquet file of (``__unit``[, ``__p``], ``__cut``, ``__cut_origin``) for the
        heavy units of these files under ``bound``, computed by the runner (a DuckDB sandbox
        that reads these files and writes the cut folder only, or the Spark cluster, which
        writes a folder of files) unless already there; None when
        no unit has more than ``max_rows`` rows (every row is kept).
        ``persons``: the dataset's person map (:mod:`hub.ingest.linkage`), whose persons are
        the units here."""
        if not paths:
            return None
        path, empty, prefix = self._paths("v3", dataset, extract_ids, bound, persons)
        if empty.exists():
            return None
        if path.exists():
            return path
        params, src = _source(paths, persons)
        prio = prio_sql(columns, "t")
        origin = f"t.{ORIGIN_COLUMN}" if persons is not None else f"t.{UNIT_COLUMN}"
        m = int(bound.max_rows)
        if bound.period is None:
            keys = UNIT_COLUMN
            heavy = f"SELECT DISTINCT {UNIT_COLUMN} FROM {src} WHERE {SEQ_COLUMN} > {m}"
            if persons is not None:  # a person of several units may be heavy as a whole
                heavy += f" UNION SELECT {PERSON_COLUMN} FROM read_parquet($persons)"
            rows = f"SELECT t.{UNIT_COLUMN}, {prio} AS p, {origin} AS o FROM {src} t"
        else:
            keys = f"{UNIT_COLUMN}, {PERIOD_KEY}"
            heavy = (f"SELECT {UNIT_COLUMN}, {period_key(bound.period)} AS {PERIOD_KEY} "
                     f"FROM {src} GROUP BY ALL HAVING count(*) > {m}")
            rows = (f"SELECT t.{UNIT_COLUMN}, {period_key(bound.period, 't')} AS {PERIOD_KEY}, "
                    f"{prio} AS p, {origin} AS o FROM {src} t")
        tmp = _tmp(path)
        # The cut is the m-th smallest (priority, origin unit): priorities are unique per
        # origin unit, so the pair is unique per person and a person keeps exactly m rows.
        sql = (
            f"WITH h AS ({heavy}), r AS ({rows}) "
            f"SELECT {keys}, p AS {CUT_COLUMN}, o AS {CUT_ORIGIN_COLUMN}, "
            f"n AS {CUT_ROWS_COLUMN} FROM ("
            f"SELECT {keys}, p, o, row_number() OVER (PARTITION BY {keys} ORDER BY p, o) AS rn, "
            f"count(*) OVER (PARTITION BY {keys}) AS n "
            f"FROM r SEMI JOIN h USING ({keys})) WHERE rn = least(n, {m})"
        )
        read = [*paths, *([persons] if persons is not None else [])]
        count = self._runner.write(sql, params, tmp, read)
        return self._keep(tmp, path if count else None, empty, prefix)

    def dropped(self, dataset: str, extract_ids: Sequence[str], paths: Sequence[Location],
                columns: frozenset[str], bound: Bound, cuts: Path,
                persons: Path | None = None) -> Path | None:
        """The Parquet file of the rows that the cut file ``cuts`` (of these files, this
        bound and these persons: :meth:`cuts`) drops, every column of the files; written
        unless already there. None when they are more than a quarter of all rows (module
        docstring): the caller then keeps the rows through the cuts instead."""
        path, many, prefix = self._paths("drop-v1", dataset, extract_ids, bound, persons)
        if many.exists():
            return None
        if path.exists():
            return path
        params, src = _source(paths, persons)
        params["cuts"] = str(cuts)
        m = int(bound.max_rows)
        tmp = _tmp(path)
        on = f"c.{UNIT_COLUMN} = t.{UNIT_COLUMN}"
        if bound.period is not None:
            on += f" AND c.{PERIOD_KEY} = {period_key(bound.period, 't')}"
        read = [*paths, cuts, *([persons] if persons is not None else [])]
        ((rows,),) = self._runner.fetch("SELECT count(*) FROM read_parquet($files)",
                                        {"files": params["files"]}, paths)
        ((gone,),) = self._runner.fetch(
            f"SELECT coalesce(sum({CUT_ROWS_COLUMN} - least({CUT_ROWS_COLUMN}, {m})), 0) "
            "FROM read_parquet($cuts)", {"cuts": params["cuts"]}, [cuts])
        few = gone <= _DROPPED_SHARE * rows
        if few:
            self._runner.write(
                f"SELECT t.* FROM {src} AS t JOIN read_parquet($cuts) AS c ON {on} "
                f"WHERE NOT {kept_sql(prio_sql(columns, 't'), 't', 'c', persons is not None)}",
                params, tmp, read)
        return self._keep(tmp, path if few else None, many, prefix)

    def _paths(self, kind: str, dataset: str, extract_ids: Sequence[str], bound: Bound,
               persons: Path | None) -> tuple[Path, Path, str]:
        """A state's file of ``kind``, its marker of no file, and the prefix of its kind."""
        self._folder.mkdir(parents=True, exist_ok=True)
        state = "\n".join([*sorted(extract_ids), persons.name if persons else ""])
        digest = hashlib.sha256(state.encode()).hexdigest()[:24]
        prefix = f"{dataset}-{bound.tag}-{kind}-"
        path = self._folder / f"{prefix}{digest}.parquet"
        return path, path.with_suffix(".none"), prefix

    def _keep(self, tmp: Path, path: Path | None, marker: Path, prefix: str) -> Path | None:
        """``tmp`` in place as ``path``, or, when None, the marker of no file."""
        if path is None:
            _remove(tmp)
            marker.touch()
            self._expire(prefix, keep=marker)
            return None
        os.replace(tmp, path)  # a file, or Spark's folder of files
        self._expire(prefix, keep=path)
        return path

    def _expire(self, prefix: str, keep: Path) -> None:
        """Remove this dataset and bound's files of older states, once stale."""
        now = time.time()
        for old in self._folder.glob(f"{prefix}*"):
            if old == keep:
                continue
            try:
                if now - old.stat().st_mtime > _STALE_SECONDS:
                    _remove(old)
            except OSError:
                continue


def _remove(path: Path) -> None:
    """Remove a cut file (DuckDB's) or folder of files (Spark's), if there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
