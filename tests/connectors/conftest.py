"""Fixtures for connector tests: the shipped contracts, a network key, real export files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors.partner.mapping import Mapping, parse_mapping
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry

KEY = NetworkKey(bytes(range(32)))

FLOWS_HEADER = ["phone", "from", "to", "payout", "month", "n", "total", "customer_name"]
FLOWS_MAPPING = """\
dataset: corridor_flows
contract_version: 1
fields:
  sender: {column: phone, default_region: GB}
  send_country: from
  receive_country: to
  channel:
    column: payout
    recode: {CASH: cash_pickup, BANK: bank_account}
  period: month
  transfer_count: n
  amount: {column: total, unit: EUR}
"""


def good_flow(i: int) -> list[str]:
    """A valid corridor_flows export row; ``i`` varies the sender."""
    return [f"07400 123{i % 1000:03d}", "GB", "NG", "CASH", "2024-03", "2", "150.5", f"Name {i}"]


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def registry() -> ContractRegistry:
    return ContractRegistry.load()


@pytest.fixture
def key() -> NetworkKey:
    return KEY


@pytest.fixture
def flows_mapping(registry: ContractRegistry) -> Mapping:
    return parse_mapping(FLOWS_MAPPING, registry)
