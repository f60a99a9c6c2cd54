"""``tahub-connect mapping suggest``: a first mapping, proposed from a sample of the export.

The proposal is for the data engineer to edit, never to trust blindly. From the first rows
of the export (CSV, Parquet or Excel) it states:

* how the file was read: the detected encoding and delimiter, written out explicitly;
* for each contract field, the column that fits it best: by name (in English, Italian,
  German, French or Spanish) and by values (IBANs that pass their check digits, phone
  numbers, country codes of the contract's domain, dates, numbers);
* per field, the options the values call for: date ``formats`` (day-first with dots or
  slashes; a time of day asks for ``timezone``), ``decimal`` and ``thousands`` separators,
  ``minor_units`` when an amount column is named in cents, ``currency_column``,
  ``add_plus`` for phone numbers written without their +, and, for categories, the
  ``fold`` that matches the contract's codes, ``unknown`` markers (``n/a``, ``-99``...),
  and ``recode`` entries for close spellings (each marked as a guess);
* the dataset, when not given: the contract whose fields the columns fit best.

Whatever it cannot decide is a line marked ``TODO``, and the columns left over are listed
under a commented ``ignore:``. Values are never copied into the proposal except category
spellings (which are not identifying).
"""

from __future__ import annotations

import difflib
import re
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path

from connectors.partner.csvsource import DELIMITER_NAMES, read_csv, sniff_csv
from connectors.partner.fieldmapping import CATEGORY_TYPES, NUMBER_TYPES, Fold
from connectors.partner.mapping import SourceFormat, SourceOptions
from connectors.partner.profile import (
    CURRENCIES,
    DOCUMENT_RE,
    TIME_RE,
    UNKNOWN_MARKERS,
    date_formats,
    guess_code,
    normalises,
    number_format,
    share,
)
from connectors.partner.rates import is_currency, minor_digits
from connectors.partner.recode import match_codes
from connectors.partner.sources import detect_format, load_source, open_duckdb
from connectors.partner.template import describe_field, yaml_str
from hub.contracts.model import Contract, ContractField, ContractRegistry, FieldType, IdentifierKind
from hub.contracts.validation import ROW_COLUMN, quote_ident
from hub.errors import SourceError

__all__ = ["suggest_mapping"]

_SAMPLE_ROWS = 2000
_SYNONYMS: dict[str, set[str]] = {
    "iban": {"iban", "account", "konto", "conto", "compte", "cuenta", "acct"},
    "phone": {"phone", "msisdn", "mobile", "tel", "telefono", "telefon", "cell", "sender"},
    "document": {"passport", "document", "doc", "ausweis", "passaporto", "documento", "pass",
                 "victim"},
    "email": {"email", "mail"},
    "period": {"date", "datum", "data", "fecha", "month", "period", "opened", "registered",
               "created", "time", "day", "mese", "monat", "reported", "raised"},
    "amount": {"amount", "importo", "betrag", "montant", "importe", "total", "sum", "value",
               "eur", "amt"},
    "transfer_count": {"count", "txn", "transfers", "anzahl", "numero", "nb", "n"},
    "origin": {"origin", "from", "source", "send", "herkunft", "provenienza", "origine",
               "origen", "recruited"},
    "destination": {"destination", "to", "dest", "receive", "ziel", "destinazione", "destino",
                    "exploitation", "exploited"},
    "transit": {"transit", "via"},
    "indicator": {"indicator", "rule", "flag", "indicatore", "indikator", "reason"},
    "typology": {"typology", "tipologia", "typologie"},
    "exploitation_type": {"exploitation", "offence", "offense", "type", "sfruttamento"},
    "exploitation_stream": {"stream"},
    "means_of_control": {"control", "coercion", "controllo"},
    "recruitment": {"recruit", "recruited", "recruitment", "reclutamento"},
    "age_band": {"age", "eta", "alter", "edad", "bracket"},
    "gender": {"gender", "sex", "sesso", "geschlecht", "sexe", "genero"},
    "channel": {"channel", "payout", "canale", "kanal", "canal", "auszahlung"},
    "sector": {"sector", "industry", "isic", "settore", "branche"},
}  # fmt: skip


@dataclass
class _Column:
    name: str
    kind: str
    values: list[str]  # non-empty cells of the sample, trimmed

    @property
    def words(self) -> set[str]:
        spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", self.name)
        parts = [p for p in re.split(r"[^a-z0-9]+", spaced.lower()) if p]
        return set(parts) | {"".join(parts)}


@dataclass
class _Choice:
    field: ContractField
    column: _Column
    score: float
    lines: list[str] = default(default_factory=list)  # option lines, indented under the field


# -- reading the sample -------------------------------------------------------------------
def _sample(path: Path, rows: int) -> tuple[list[_Column], list[str], SourceOptions]:
    """The sample's columns, what was detected about the file, and the source options."""
    fmt = detect_format(path, SourceOptions())
    if fmt not in (SourceFormat.CSV, SourceFormat.PARQUET, SourceFormat.XLSX):
        raise SourceError(
            f"{path.name}: `mapping suggest` reads CSV, Parquet or Excel files; export a "
            "sample of the query's result to one of those"
        )
    notes: list[str] = []
    options = SourceOptions()
    with tempfile.TemporaryDirectory(prefix="tahub-suggest-") as temp:
        con = open_duckdb([path.parent], temp_dir=Path(temp))
        try:
            if fmt is SourceFormat.CSV:
                dialect = sniff_csv(path, options)
                notes += list(dialect.notes)
                options = SourceOptions(delimiter=dialect.delimiter, encoding=dialect.encoding)
                read = read_csv(con, path, options, "__sample", dialect, limit=rows)
                relation, columns = read.relation, list(read.columns)
                types = dict.fromkeys(columns, "VARCHAR")
            else:
                src = load_source(con, path, options)
                relation, columns, types = src.relation, list(src.columns), src.types
            selected = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR)" for c in columns)
            data = con.execute(
                f"SELECT {selected} FROM {quote_ident(relation)} "
                f"ORDER BY {quote_ident(ROW_COLUMN)} LIMIT {int(rows)}"
            ).fetchall()
        finally:
            con.close()
    out = []
    for i, name in enumerate(columns):
        values = [str(r[i]).strip() for r in data if r[i] is not None and str(r[i]).strip()]
        out.append(_Column(name, types.get(name, "VARCHAR").upper(), values))
    notes.append(f"proposed from the first {len(data):,} rows")
    return out, notes, options


# -- scoring -------------------------------------------------------------------------------
def _synonyms(f: ContractField) -> set[str]:
    key = f.identifier_kind.value if f.identifier_kind is not None else f.name
    if f.route_stage is not None:
        key = {"origin": "origin", "transit": "transit", "destination": "destination"}[
            f.route_stage.value
        ]
    words = set(_SYNONYMS.get(key, set())) | set(f.name.split("_")) | {f.name}
    return {w for w in words if len(w) > 1 or w == key}


def _name_score(f: ContractField, column: _Column) -> float:
    words, synonyms = column.words, _synonyms(f)
    if words & synonyms:
        return 1.0
    close = max(
        (difflib.SequenceMatcher(None, w, s).ratio() for w in words for s in synonyms),
        default=0.0,
    )
    return 0.6 if close >= 0.8 else 0.0


def _value_score(f: ContractField, column: _Column) -> float:
    values = column.values[:300]
    if not values:
        return 0.0
    if f.type is FieldType.TOKEN:
        kind = f.identifier_kind
        if kind is IdentifierKind.IBAN:
            return share(values, lambda v: normalises(IdentifierKind.IBAN, v))
        if kind is IdentifierKind.PHONE:
            digits = share(values, lambda v: 7 <= sum(c.isdigit() for c in v) <= 15
                            and not re.search(r"[A-Za-z]", v))  # fmt: skip
            return digits * (0.5 + 0.5 * share(values, lambda v: "." not in v))
        if kind is IdentifierKind.EMAIL:
            return share(values, lambda v: "@" in v)
        if kind is IdentifierKind.DOCUMENT:
            return share(values, lambda v: bool(DOCUMENT_RE.match(v)))
        return 0.3
    if f.type in CATEGORY_TYPES:
        items = [i.strip() for v in values for i in re.split(r"[;|,]", v) if i.strip()]
        fold = (Fold.CASE, Fold.SPACES, Fold.PUNCTUATION)
        matched, _rest = match_codes(list(dict.fromkeys(items)), f, fold)
        return sum(i in matched for i in items) / len(items) if items else 0.0
    if f.type in NUMBER_TYPES:
        if column.kind.startswith(("DOUBLE", "FLOAT", "DECIMAL", "INT", "BIGINT")):
            return 1.0
        _decimal, _thousands, numeric = number_format(values)
        if share(values, lambda v: bool(re.match(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}", v))):
            return 0.0  # dates are not numbers
        return numeric
    if f.type is FieldType.PERIOD:
        if column.kind in ("DATE",) or column.kind.startswith("TIMESTAMP"):
            return 1.0
        return date_formats(values)[1]
    return 0.0


def _score(f: ContractField, column: _Column) -> float:
    value, name = _value_score(f, column), _name_score(f, column)
    if f.type in CATEGORY_TYPES and name == 1.0 and value < 0.5:
        return 0.5 + 0.4 * value  # the name says it, the spellings differ: recode
    return 0.65 * value + 0.35 * name if value >= 0.3 else 0.0


def _assign(contract: Contract, columns: list[_Column]) -> list[_Choice]:
    candidates = sorted(
        (
            (_score(f, c), -i, -j, f, c)
            for i, f in enumerate(contract.extract_fields)
            for j, c in enumerate(columns)
        ),
        key=lambda t: t[:3],
        reverse=True,
    )
    chosen: dict[str, _Choice] = {}
    used: set[str] = set()
    for score, _i, _j, f, c in candidates:
        if score < 0.35 or f.name in chosen or c.name in used:
            continue
        chosen[f.name] = _Choice(f, c, score)
        used.add(c.name)
    return [chosen[f.name] for f in contract.extract_fields if f.name in chosen]


# -- options per field -----------------------------------------------------------------
def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(yaml_str(i) for i in items) + "]"


def _category_lines(f: ContractField, column: _Column) -> list[str]:
    values = column.values
    separator = None
    if f.type is FieldType.CATEGORY_LIST:
        splits = {s: [i.strip() for v in values for i in v.split(s) if i.strip()]
                  for s in (";", "|", ",")}  # fmt: skip
        separator = max(splits, key=lambda s: (len(match_codes(set(splits[s]), f, list(Fold))[0]),
                                               len(splits[s])))  # fmt: skip
        values = splits[separator]
    counts = Counter(values)
    distinct = [v for v, _n in counts.most_common(60)]
    lines = []
    if separator is not None and separator != "|":
        lines.append(f"separator: {yaml_str(separator)}")
    folds: list[Fold] = []
    best = len(match_codes(distinct, f, [])[0])
    for step in ([Fold.CASE], [Fold.CASE, Fold.SPACES], [Fold.CASE, Fold.SPACES,
                 Fold.PUNCTUATION], [Fold.CASE, Fold.SPACES, Fold.PUNCTUATION, Fold.ACCENTS]):
        n = len(match_codes(distinct, f, step)[0])
        if n > best:
            best, folds = n, step
    if folds:
        lines.append(f"fold: [{', '.join(folds)}]")
    _matched, rest = match_codes(distinct, f, folds)
    markers = [v for v in rest if v.lower() in UNKNOWN_MARKERS]
    unknown_code = next((c for c in f.codes if "unknown" in c.lower()), None)
    recode = []
    if unknown_code is not None:
        recode = [f"  {yaml_str(v)}: {yaml_str(unknown_code)}  # unknown" for v in markers]
    elif markers:
        lines.append(f"unknown: {_yaml_list(markers)}")
    todo = []
    for v in rest:
        if v in markers:
            continue
        code = guess_code(v, f)
        if code is None:
            todo.append(v)
        else:
            recode.append(f"  {yaml_str(v)}: {yaml_str(code)}  # guessed: check")
    if recode:
        lines += ["recode:", *recode]
    if todo:
        codes = ", ".join(f.codes[:12]) + (", ..." if len(f.codes) > 12 else "")
        lines.append(f"# TODO: which code is each of these? ({codes})")
        lines += [f"#   {yaml_str(v)}:" for v in todo[:20]]
    return lines


def _number_lines(f: ContractField, column: _Column, currency: _Column | None) -> list[str]:
    lines: list[str] = []
    if not column.kind.startswith(("DOUBLE", "FLOAT", "DECIMAL", "INT", "BIGINT")):
        decimal, thousands, _ = number_format(column.values)
        if decimal != ".":
            lines.append(f"decimal: {yaml_str(decimal)}")
        if thousands and thousands != (["."] if decimal == "," else []):
            lines.append(f"thousands: [{', '.join(yaml_str(t) for t in thousands)}]")
    sentinels = [v for v in dict.fromkeys(column.values) if v.lower() in UNKNOWN_MARKERS]
    if sentinels:
        lines.append(f"unknown: {_yaml_list(sentinels)}")
    if not is_currency(f.unit):
        if f.unit is not None:
            lines.append(f"unit: {f.unit}")
        return lines
    words = column.words
    named = next((w.upper() for w in words if w.upper() in CURRENCIES), None)
    cents = bool(words & {"cent", "cents", "ct", "minor", "centesimi", "centimes", "pence"})
    if currency is not None:
        lines.append(f"currency_column: {yaml_str(currency.name)}")
        lines.append(
            "rates: {file: fx_rates.csv, date: 2025-01-31}  # TODO: your rate table "
            f"(currency,units_per_{f.unit}) and the date its rates are for"
        )
    elif named is not None and named != f.unit:
        lines.append(f"unit: {named}  # from the column's name")
        lines.append(f"rates: {{file: fx_rates.csv, date: 2025-01-31}}  # TODO: {named} per "
                     f"{f.unit}, and the date")  # fmt: skip
    else:
        said = "from the column's name" if named else f"TODO: check that the column is in {f.unit}"
        lines.append(f"unit: {f.unit}  # {said}")
    numbers = [_to_float(v) for v in column.values]
    whole = [x for x in numbers if x is not None]
    top = f.domain.clamp[1] if f.domain is not None and f.domain.clamp is not None else None
    looks_minor = bool(whole) and all(x == int(x) for x in whole) and top is not None and (
        statistics.median(whole) > top
    )
    if cents or looks_minor:
        why = "the column's name says cents" if cents else (
            "whole numbers, most above the contract's range"
        )
        digits = minor_digits(named or str(f.unit))
        lines.append(f"minor_units: true  # {why} (divided by {10 ** digits})")
    return lines


def _to_float(value: str) -> float | None:
    try:
        return float(value.replace("\u00a0", "").replace(" ", "").replace(",", "."))
    except ValueError:
        return None


def _period_lines(column: _Column, time_column: _Column | None) -> list[str]:
    if column.kind == "DATE" or column.kind.startswith("TIMESTAMP"):
        return []
    values = column.values
    if time_column is not None:
        values = [f"{d} {t}" for d, t in zip(column.values, time_column.values, strict=False)]
    formats, _, note = date_formats(values)
    lines = []
    if time_column is not None:
        lines.append(f"columns: [{yaml_str(column.name)}, {yaml_str(time_column.name)}]")
    if formats:
        lines.append(f"formats: {_yaml_list(formats)}" + (f"  # {note}" if note else ""))
    timed = any("%H" in f for f in formats or [])
    timed = timed or any(re.search(r"\d{2}:\d{2}", v) for v in values[:50])
    if timed:
        lines.append("# timezone: Europe/Rome  # TODO: the zone these local times are written "
                     "in; the month is then taken in UTC")  # fmt: skip
    return lines


def _phone_lines(column: _Column, region: _Column | None) -> list[str]:
    values = column.values[:300]
    plain = [v for v in values if v[:1] in "123456789"]
    lines = []
    if len(plain) >= 0.1 * len(values) and share(
        plain, lambda v: normalises(IdentifierKind.PHONE, "+" + re.sub(r"\D", "", v))
    ) >= 0.8:
        lines.append("add_plus: true  # some numbers start with their country code, without +")
    if region is not None:
        lines.append(f"region_column: {yaml_str(region.name)}")
    elif share(values, lambda v: v.startswith("0") and not v.startswith("00")) > 0:
        lines.append("# default_region: GB  # TODO: the country of numbers written without +")
    return lines


def _options(choice: _Choice, spare: list[_Column]) -> list[str]:
    f, column = choice.field, choice.column
    if f.type in CATEGORY_TYPES:
        return _category_lines(f, column)
    if f.type in NUMBER_TYPES:
        currency = next(
            (c for c in spare if c.values and share(c.values, lambda v: v.upper() in CURRENCIES)
             >= 0.9),
            None,
        )  # fmt: skip
        if currency is not None and is_currency(f.unit):
            spare.remove(currency)
        return _number_lines(f, column, currency if is_currency(f.unit) else None)
    if f.type is FieldType.PERIOD:
        time_column = next(
            (c for c in spare if c.values and share(c.values, lambda v: bool(TIME_RE.match(v)))
             >= 0.9),
            None,
        )  # fmt: skip
        if time_column is not None:
            spare.remove(time_column)
        return _period_lines(column, time_column)
    if f.identifier_kind is IdentifierKind.PHONE:
        region = next(
            (c for c in spare if ("region" in c.words or "country" in c.words) and c.values
             and share(c.values, lambda v: len(v) == 2 and v.isalpha()) >= 0.9),
            None,
        )  # fmt: skip
        if region is not None:
            spare.remove(region)
        return _phone_lines(column, region)
    return []


# -- the proposal -------------------------------------------------------------------------
def _render(
    contract: Contract,
    choices: list[_Choice],
    spare: list[_Column],
    notes: list[str],
    options: SourceOptions,
    path: Path,
    ranking: list[str],
) -> str:
    out = [
        f"# tahub-connect mapping proposed for {path.name}: {contract.title} "
        f"({contract.dataset} v{contract.version})",
        "# Check every line (those marked TODO first), then run:",
        f"#   tahub-connect check {path.name} --mapping <this file>",
        *[f"# {n}" for n in notes],
        *[f"# {r}" for r in ranking],
        f"dataset: {contract.dataset}",
        f"contract_version: {contract.version}",
    ]
    if options.delimiter is not None:
        out += [
            "source:",
            f"  delimiter: {DELIMITER_NAMES[options.delimiter]}",
            f"  encoding: {options.encoding.value}",
        ]
    out.append("fields:")
    by_field = {c.field.name: c for c in choices}
    for f in contract.extract_fields:
        choice = by_field.get(f.name)
        out += describe_field(f)
        if choice is None:
            prefix = "" if f.required else "# "
            out.append(f"  {prefix}{f.name}:")
            out.append(f'  {prefix}  column: "TODO"  # no column of the sample fits')
            if is_currency(f.unit):
                out.append(f"  {prefix}  unit: {f.unit}")
            continue
        lines = choice.lines
        if lines:
            out.append(f"  {f.name}:")
            if not any(x.startswith("columns:") for x in lines):
                out.append(f"    column: {yaml_str(choice.column.name)}")
            out += [f"    {x}" for x in lines]
        else:
            out.append(f"  {f.name}: {yaml_str(choice.column.name)}")
    if spare:
        out.append("# Columns no field takes: say why each is left out (or map it):")
        out.append("# ignore:")
        for c in spare:
            out.append(f"#   {c.name}: TODO why it is left out")
    return "\n".join(out) + "\n"


def suggest_mapping(
    path: Path,
    registry: ContractRegistry,
    *,
    dataset: str | None = None,
    version: int | None = None,
    rows: int = _SAMPLE_ROWS,
) -> str:
    """A commented mapping proposed for the export at ``path`` (see the module docstring)."""
    if not path.is_file():
        raise SourceError(f"source {path} does not exist")
    columns, notes, options = _sample(path, rows)
    if dataset is not None:
        contracts = [registry.get(dataset, version)]
    else:
        contracts = [registry.get(d) for d in registry.datasets()]
    fits = []
    for contract in contracts:
        choices = _assign(contract, columns)
        fits.append((sum(c.score for c in choices) / len(contract.extract_fields), contract,
                     choices))  # fmt: skip
    fits.sort(key=lambda t: t[0], reverse=True)
    _fit, contract, choices = fits[0]
    ranking = []
    if dataset is None and len(fits) > 1:
        ranking.append(
            "dataset chosen as the best fit of: "
            + ", ".join(f"{c.dataset} v{c.version} ({len(ch)} fields found)" for _s, c, ch in fits)
            + " (or pass --dataset)"
        )
    used = {c.column.name for c in choices}
    spare = [c for c in columns if c.name not in used]
    for choice in choices:
        choice.lines = _options(choice, spare)
    return _render(contract, choices, spare, notes, options, path, ranking)
