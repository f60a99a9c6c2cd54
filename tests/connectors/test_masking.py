"""Masking: identifier-shaped runs are masked wherever they sit; dates, amounts, codes are not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.partner.masking import mask_all, mask_identifiers
from tests.strategies import documents, ibans, phone_numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GB82 WEST 1234 5698 7654 32", "GB** **** **** **** **** **"),
        ("gb82west12345698765432", "gb********************"),
        ("paid to GB82WEST12345698765432 today", "paid to GB******************** today"),
        ("jo@example.org", "j*@*******.***"),
        ("07400 123456", "07*** ******"),
        ("+44 7400 123456", "+44 **** ******"),
        ("447400123456", "44**********"),
        ("AB1234567", "AB*******"),
        ("AB 1234567", "AB *******"),
        ("call 030 1234567 or mail x@y.de", "call 03* ******* or mail x@*.**"),
    ],
)
def test_identifier_shaped_runs_are_masked(text: str, masked: str) -> None:
    assert mask_identifiers(text) == masked


@pytest.mark.parametrize(
    "text",
    ["2024-03-15", "15.03.2024 23:45", "2024-03-15 10:00:00", "1.234.567,50", "1 234 567,00",
     "12345678.50", "150050", "1234567", "-99", "n/a", "R01", "cash_pickup", "18-20", "NaN",
     "SexualExploitation", "Customer seen depositing cash"],
)  # fmt: skip
def test_dates_amounts_and_codes_stay_readable(text: str) -> None:
    assert mask_identifiers(text) == text


def test_mask_all_keeps_only_first_letters() -> None:
    assert mask_all("Jane Doe") == "J*** D**"
    assert mask_all("Kunde Nummer 12") == "K**** N***** 1*"


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(ibans(), phone_numbers(), documents()),
    before=st.sampled_from(["", "x ", "moved to ", "1,"]),
    after=st.sampled_from(["", " y", ", done", ";"]),
)
def test_no_identifier_survives_masking(value: str, before: str, after: str) -> None:
    masked = mask_identifiers(before + value + after)
    digits = "".join(c for c in value if c.isdigit())
    assert value not in masked
    assert digits[-6:] not in "".join(c for c in masked if c.isdigit())
