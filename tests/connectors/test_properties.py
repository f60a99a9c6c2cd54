"""Property tests: generated exports for every contract, through the whole connector.

Valid rows are always accepted (and the hub accepts the extract); one corrupted cell is
always rejected, on its own row, with its own field and the right reason, and the
identifier is never echoed. Generated values span each contract's whole domain, so the
magnitude check (a plausibility check, not a contract rule) is switched off here, and the
reject-rate threshold too (a row of five may be the one rejected).
"""

from __future__ import annotations

import csv
import re
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.partner.fieldmapping import NUMBER_TYPES as NUMBERS
from connectors.partner.mapping import Mapping, parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.template import mapping_template
from hub.contracts.model import TOKEN_RE, Contract, ContractRegistry, FieldType
from hub.ingest.extracts import check_extract
from tests.connectors.conftest import KEY
from tests.strategies import Row, corruptions, valid_rows

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _export(folder: Path, contract: Contract, rows: list[Row]) -> Path:
    path = folder / "export.csv"
    names = [f.name for f in contract.extract_fields]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows([[row[n] if row[n] is not None else "" for n in names] for row in rows])
    return path


def _contracts(registry: ContractRegistry) -> st.SearchStrategy[Contract]:
    return st.sampled_from(list(registry))


def _mapping(contract: Contract, registry: ContractRegistry) -> Mapping:
    """The contract's template, with the magnitude check off for its number fields."""
    mapping = parse_mapping(mapping_template(contract), registry)
    numbers = {f.name for f in contract.extract_fields if f.type in NUMBERS}
    fields = {
        name: fm.model_copy(update={"check_magnitude": False}) if name in numbers else fm
        for name, fm in mapping.fields.items()
    }
    return mapping.model_copy(update={"fields": fields})


@PROPERTY
@given(data=st.data())
def test_valid_rows_are_accepted_by_connector_and_hub(
    registry: ContractRegistry, data: st.DataObject
) -> None:
    contract = data.draw(_contracts(registry))
    rows = data.draw(st.lists(valid_rows(contract), min_size=1, max_size=6))
    mapping = _mapping(contract, registry)
    with tempfile.TemporaryDirectory() as folder:
        result = prepare_extract(
            _export(Path(folder), contract, rows),
            mapping,
            key=KEY,
            out_path=Path(folder) / "out.parquet",
            registry=registry,
        )
        assert result.rows_rejected == 0, result.errors
        table = pq.read_table(result.path)
        assert table.num_rows == len(rows)
        for f in contract.extract_fields:
            if f.type is FieldType.TOKEN:
                tokens = table.column(f.name).to_pylist()
                assert all(re.match(TOKEN_RE, t) for t in tokens if t is not None or f.required)
        check_extract(result.path, contract)


@PROPERTY
@given(data=st.data())
def test_one_corrupted_cell_rejects_its_row_for_its_field(
    registry: ContractRegistry, data: st.DataObject
) -> None:
    contract = data.draw(_contracts(registry))
    rows = data.draw(st.lists(valid_rows(contract), min_size=2, max_size=5))
    bad = data.draw(corruptions(contract))
    at = data.draw(st.integers(0, len(rows) - 1))
    rows[at] = {**rows[at], bad.field: bad.value}
    mapping = _mapping(contract, registry)
    with tempfile.TemporaryDirectory() as folder:
        result = prepare_extract(
            _export(Path(folder), contract, rows),
            mapping,
            key=KEY,
            out_path=Path(folder) / "out.parquet",
            registry=registry,
            max_reject_ratio=1.0,
        )
    assert (result.rows_rejected, result.rows_valid) == (1, len(rows) - 1)
    assert len(result.errors) == 1, result.errors
    error = result.errors[0]
    assert (error.row, error.line, error.field) == (at + 1, at + 2, bad.field)
    assert bad.reason in error.reason
    if contract.field(bad.field).type is FieldType.TOKEN:
        assert error.value is None
