"""Row validation compiled to SQL and run in DuckDB, on both the partner and the hub side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hub.contracts.model import ContractRegistry
from hub.contracts.rowcheck import check_relation, valid_rows_sql, write_rejects
from hub.contracts.validation import Side, validation_sql

TOKEN = "0a1b2c3d." + "f" * 64
REGISTRY = ContractRegistry.load()
ALERTS = REGISTRY.get("bank_alerts", 1)
CASES = REGISTRY.get("case_records", 2)


def _alert(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": TOKEN, "indicator": "cash_deposits_no_payroll", "typology": "funnel_account",
        "exploitation_stream": None, "origin_country": "RO", "destination_country": "GB",
        "amount": 1200.5, "period": "2025-03",
    }
    row.update(overrides)
    return row


def _check(rows: list[dict[str, Any]], side: Side, contract: Any = ALERTS,
           schema: pa.Schema | None = None) -> tuple[Any, duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    table = pa.Table.from_pylist(
        [{"__row": i + 1, **r} for i, r in enumerate(rows)], schema=schema
    )
    con.register("src", table)
    return check_relation(con, contract, "src", side), con


def test_a_valid_row_passes_and_is_typed() -> None:
    result, con = _check([_alert()], Side.HUB)
    assert (result.rows, result.rejected_rows, result.errors) == (1, 0, [])
    assert con.sql(valid_rows_sql(ALERTS)).fetchall() == [
        (TOKEN, "cash_deposits_no_payroll", "funnel_account", None, "RO", "GB", 1200.5, "2025-03")
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"subject": None}, "subject", "required"),
        ({"subject": "DE89370400440532013000"}, "subject", "not a pseudonymised token"),
        ({"indicator": "bogus"}, "indicator", "not in the contract's domain"),
        ({"destination_country": "XX"}, "destination_country", "not in the contract's domain"),
        ({"origin_country": None}, "origin_country", "required"),
        ({"amount": float("nan")}, "amount", "NaN and infinity are not allowed"),
        ({"amount": float("inf")}, "amount", "NaN and infinity are not allowed"),
        ({"amount": -0.01}, "amount", "negative values are not allowed"),
        ({"period": "2025-13"}, "period", "not a month"),
        ({"period": "2014-12"}, "period", "outside the contract's months 2015-01 to 2030-12"),
        ({"period": "2025-03-14"}, "period", "not a month"),  # the hub wants exact months
    ],
)
def test_hub_side_refuses_each_kind_of_bad_value(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    result, _ = _check([_alert(), _alert(**overrides)], Side.HUB)
    assert result.rejected_rows == 1
    (error,) = result.errors
    assert (error.row, error.field) == (2, field)
    assert reason in error.reason
    if field == "subject":
        assert error.value is None  # identifiers are never echoed


def test_optional_fields_may_be_empty_but_not_wrong() -> None:
    rows = [_alert(exploitation_stream=s) for s in (None, "organ_removal", "cooking")]
    result, _ = _check(rows, Side.HUB)
    assert [(e.row, e.field) for e in result.errors] == [(3, "exploitation_stream")]


def _text_alert(**overrides: Any) -> dict[str, Any]:
    return {k: (None if v is None else str(v)) for k, v in _alert(**overrides).items()}


@pytest.mark.parametrize(
    ("value", "reason"),
    [("12,5", "not a number"), ("nan", "NaN"), ("-inf", "NaN"), ("1e400", "NaN"),
     ("-3", "negative"), ("", "required"), ("   ", "required")],
)
def test_partner_side_reads_text_and_reports_type_errors_per_row(value: str, reason: str) -> None:
    result, _ = _check([_text_alert(subject="DE89 3704"), _text_alert(amount=value)], Side.PARTNER)
    assert result.rejected_rows == 1
    assert result.errors[0].row == 2 and reason in result.errors[0].reason


def test_partner_side_truncates_dates_to_months_and_keeps_raw_identifiers() -> None:
    result, con = _check([_text_alert(subject=" DE89 3704 ", period="2025-03-14")], Side.PARTNER)
    assert result.rejected_rows == 0
    ((subject, period),) = con.sql("SELECT subject, period FROM __checked").fetchall()
    assert (subject, period) == ("DE89 3704", "2025-03")


def test_integers_must_be_whole_and_respect_the_minimum() -> None:
    flows = REGISTRY.get("corridor_flows")
    base = {"sender": "+4915112345678", "send_country": "DE", "receive_country": "NG",
            "channel": "cash_pickup", "period": "2025-01", "amount": "100"}
    rows = [{**base, "transfer_count": v} for v in ("3", "2.5", "0", "9007199254740993", "x")]
    result, con = _check(rows, Side.PARTNER, contract=flows)
    assert [(e.row, e.reason) for e in result.errors] == [
        (2, "not a whole number"), (3, "below the minimum 1"), (4, "out of range"),
        (5, "not a number"),
    ]
    assert con.execute("SELECT transfer_count FROM __checked WHERE __row = 1").fetchone() == (3,)


def _case(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": TOKEN, "exploitation_type": "ForcedLabour",
        "means_of_control": ["DebtBondage", "WithholdsDocuments"], "recruitment": None,
        "source_country": "NG", "transit_country": "LY", "destination_country": "IT",
        "sector": "A", "age_band": "18-20", "gender": "Feminine", "period": "2024-07",
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    ("controls", "reason"),
    [(["DebtBondage", "Magic"], "not in the contract's domain: Magic"),
     (["DebtBondage", "DebtBondage"], "a code is listed twice")],
)
def test_category_lists_check_every_code(controls: list[str], reason: str) -> None:
    result, _ = _check([_case(), _case(means_of_control=controls)], Side.HUB, contract=CASES)
    assert [(e.row, e.field, e.reason) for e in result.errors] == [
        (2, "means_of_control", reason)
    ]


def test_empty_category_list_counts_as_unknown_for_an_optional_field() -> None:
    result, con = _check([_case(means_of_control=[])], Side.HUB, contract=CASES)
    assert result.rejected_rows == 0
    assert con.execute("SELECT means_of_control FROM __checked").fetchone() == (None,)


def test_every_error_of_a_row_is_reported_and_counted() -> None:
    bad = _alert(indicator="x", typology="y", amount=-1.0, period="nope")
    result, _ = _check([bad] * 30, Side.HUB)
    assert result.rejected_rows == 30 and result.total_errors == 120
    assert len(result.errors) == 20  # the report is capped; total_errors tells the rest


def test_rejects_file_lists_row_field_reason(tmp_path: Path) -> None:
    _, con = _check([_alert(), _alert(amount=-5.0), _alert(subject=None)], Side.HUB)
    out = tmp_path / "rejects.csv"
    assert write_rejects(con, out) == 2
    lines = out.read_text().splitlines()
    assert lines[0] == "row,field,reason,value"
    assert lines[1:] == ["2,amount,negative values are not allowed,-5.0", "3,subject,required,"]


def test_sql_quotes_category_codes() -> None:
    sql = validation_sql(ALERTS, "src", Side.HUB)
    assert "'cash_deposits_no_payroll'" in sql
    assert "contract''s domain" in sql  # quotes in messages are escaped
