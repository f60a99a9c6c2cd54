"""Synthetic partner exports for the demo: five members, each in its own format.

Every partner exports from its own systems with its own column names, codes and file format
(CSV with commas, CSV with semicolons in Latin-1, Parquet, Excel, a SQLite database), plus
columns that must never reach the hub (names, free-text notes), so that the demo exercises
the mapping files and the connector exactly as a real partner would.

Two patterns are planted that no single member can see:

* **Shared funnel accounts**: 40 beneficiary IBANs flagged by *both* banks on the RO -> GB
  corridor (funnel accounts, cash deposits with no payroll). Bank A writes the IBANs spaced
  and upper-case, bank B compact and lower-case; the connector's normalisation makes their
  tokens equal, so the overlap shows only when the banks' alerts are pooled.
* **A route split across NGO and police**: 60 people recruited in Nigeria and moved through
  Libya. The NGO records where they came from (NG, via LY) but not where they were
  exploited; the police record where they were exploited (IT, via LY) but not where they
  came from. Linked by the pseudonymised passport number, the route NG -> LY -> IT appears
  only when both are pooled.

The generator is seeded and deterministic. It uses :mod:`random` because this is *fake
input data*, not privacy noise: every DP noise sample in tahub comes from OpenDP.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import phonenumbers
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from stdnum import iban as stdiban

__all__ = ["PARTNERS", "DemoPartner", "write_exports"]

# Where money and people move in the demo, roughly as in published corridor and route data.
ORIGINS = ["RO", "BG", "NG", "VN", "AL", "UA", "MD", "PH", "IN", "CN", "BR", "ER", "SY", "PK"]
DESTINATIONS = ["GB", "IT", "DE", "FR", "ES", "NL", "BE", "GR", "AE", "US"]
TRANSITS = ["LY", "TR", "RS", "HU", "AT", "NE", "MA", "MX"]


@dataclass(frozen=True)
class DemoPartner:
    slug: str
    name: str
    kind: str  # hub.actors.MemberKind value
    dataset: str
    contract_version: int
    export: str  # file name of the export in the partner's folder


PARTNERS = [
    DemoPartner("northbank", "Northbank plc", "bank", "bank_alerts", 1, "alerts_export.csv"),
    DemoPartner("meridiana", "Banca Meridiana", "bank", "bank_alerts", 1, "segnalazioni.csv"),
    DemoPartner("swiftsend", "SwiftSend Remittances", "money_transfer", "corridor_flows", 1,
                "flows.parquet"),
    DemoPartner("safepassage", "Safe Passage Foundation", "ngo", "case_records", 2, "cases.xlsx"),
    DemoPartner("metpolice", "Metropolitan Police Anti-Trafficking Unit", "law_enforcement",
                "case_records", 1, "ahtu.sqlite"),
]


# BBAN layouts (letters, digits) of the countries the demo banks hold accounts in.
_BBAN = {"GB": (4, 14), "DE": (0, 18), "IT": (1, 22)}


def _iban(rng: random.Random, country: str = "GB") -> str:
    letters, digits = _BBAN[country]
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters)) + "".join(
        rng.choice(string.digits) for _ in range(digits)
    )
    return country + stdiban.calc_check_digits(country + "00" + bban) + bban


def _spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _month(rng: random.Random, first: str = "2024-01", last: str = "2025-12") -> dt.date:
    y0, m0 = int(first[:4]), int(first[5:])
    span = (int(last[:4]) - y0) * 12 + int(last[5:]) - m0
    k = rng.randint(0, span)
    return dt.date(y0 + (m0 - 1 + k) // 12, (m0 - 1 + k) % 12 + 1, rng.randint(1, 28))


def _mobile(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None  # noqa: S101 - every demo region has an example mobile number
    digits = str(example.national_number)
    while True:
        candidate = digits[:3] + "".join(rng.choice(string.digits) for _ in digits[3:])
        number = phonenumbers.parse(candidate, region)
        if phonenumbers.is_valid_number(number):
            return number


def _passport(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + "".join(
        rng.choice(string.digits) for _ in range(7)
    )


# -- the banks ------------------------------------------------------------------------

# Bank A's own rule codes, recoded to the contract's indicators by its mapping file.
NORTHBANK_RULES = {
    "R01": "cash_deposits_no_payroll", "R02": "rapid_movement_of_funds",
    "R03": "several_wages_one_account", "R04": "pays_third_party_living_costs",
    "R05": "frequent_prepaid_card_purchases", "R06": "linked_to_commercial_sex_ads",
    "R07": "third_party_speaks_for_customer", "R08": "cash_deposits_outside_hours",
    "R09": "threshold_avoidance", "R99": "other",
}
NORTHBANK_TYPOLOGY = {"FC": "front_company", "EE": "exploitative_employment",
                      "FA": "funnel_account", "APM": "alternative_payment", "NA": "unknown"}
MERIDIANA_TYPOLOGY = {"societa_di_comodo": "front_company",
                      "sfruttamento_lavorativo": "exploitative_employment",
                      "conto_imbuto": "funnel_account", "pagamenti_alternativi":
                      "alternative_payment", "non_determinata": "unknown"}


def _alerts(rng: random.Random, n: int, shared: list[str], shared_hits: int) -> Iterator[dict]:
    """Alert rows in contract codes; the caller renames and recodes per bank.

    Each shared IBAN is flagged at least once (the planted hits cycle through them).
    """
    indicators = list(NORTHBANK_RULES.values())
    for i in range(n + shared_hits):
        planted = i >= n
        yield {
            "subject": shared[(i - n) % len(shared)]
            if planted
            else _iban(rng, rng.choice(["GB", "IT", "DE"])),
            "indicator": rng.choice(["cash_deposits_no_payroll", "rapid_movement_of_funds"])
            if planted else rng.choice(indicators),
            "typology": "funnel_account" if planted else rng.choice(
                list(NORTHBANK_TYPOLOGY.values())),
            "stream": "sexual_exploitation" if planted else rng.choice(
                ["sexual_exploitation", "forced_labour", None, None]),
            "origin": "RO" if planted else rng.choice(ORIGINS),
            "destination": "GB" if planted else rng.choice(DESTINATIONS),
            "amount": round(rng.lognormvariate(6.5, 1.2), 2),
            "date": _month(rng, "2025-01", "2025-06") if planted else _month(rng),
        }


def _northbank(rng: random.Random, folder: Path, shared: list[str]) -> None:
    rule_of = {v: k for k, v in NORTHBANK_RULES.items()}
    typ_of = {v: k for k, v in NORTHBANK_TYPOLOGY.items()}
    rows = [
        {
            "alert_ref": f"NB-{i:06d}",
            "alert_date": a["date"].isoformat(),
            "customer_name": f"Customer {rng.randint(1, 10**6)}",  # never leaves the bank
            "customer_iban": _spaced(a["subject"]),
            "rule": rule_of[a["indicator"]],
            "typology_code": typ_of[a["typology"]],
            "stream": a["stream"] or "",
            "amount_eur": a["amount"],
            "from_country": a["origin"],
            "to_country": a["destination"],
            "analyst_notes": "Customer seen depositing cash with a man who held her documents",
        }
        for i, a in enumerate(_alerts(rng, 6000, shared, 120))
    ]
    pacsv.write_csv(pa.Table.from_pylist(rows), folder / "alerts_export.csv")


def _meridiana(rng: random.Random, folder: Path, shared: list[str]) -> None:
    typ_of = {v: k for k, v in MERIDIANA_TYPOLOGY.items()}
    lines = ["data_segnalazione;iban_cliente;indicatore;tipologia;importo;paese_origine;"
             "paese_destinazione;note"]
    for a in _alerts(rng, 4000, shared, 90):
        lines.append(";".join([
            a["date"].strftime("%Y-%m"), a["subject"].lower(), a["indicator"],
            typ_of[a["typology"]], f"{a['amount']:.2f}", a["origin"], a["destination"],
            "Versamenti in contanti in più città",  # Latin-1 accent on purpose
        ]))
    (folder / "segnalazioni.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


# -- the money-transfer firm ----------------------------------------------------------

PAYOUT = {"CASH": "cash_pickup", "BANK": "bank_account", "WALLET": "mobile_wallet",
          "CARD": "prepaid_card"}


def _swiftsend(rng: random.Random, folder: Path) -> None:
    senders = [(_mobile(rng, r), r) for r in rng.choices(["DE", "IT", "GB", "FR"], k=3000)]
    planted = [(_mobile(rng, "IT"), "IT") for _ in range(80)]  # IT -> NG earnings remitted
    rows: list[dict[str, Any]] = []
    formats = [phonenumbers.PhoneNumberFormat.NATIONAL,
               phonenumbers.PhoneNumberFormat.INTERNATIONAL,
               phonenumbers.PhoneNumberFormat.E164]
    for number, region in senders + planted:
        is_planted = (number, region) in planted
        for _ in range(rng.randint(1, 6)):
            rows.append({
                "sender_msisdn": phonenumbers.format_number(number, rng.choice(formats)),
                "sender_region": region,
                "corridor_from": region,
                "corridor_to": "NG" if is_planted else rng.choice(ORIGINS),
                "payout": "CASH" if is_planted else rng.choice(list(PAYOUT)),
                "month": _month(rng, "2025-01", "2025-06") if is_planted else _month(rng),
                "txn_count": rng.randint(4, 20) if is_planted else rng.randint(1, 5),
                "total_eur": round(rng.uniform(900, 3000) if is_planted else
                                   rng.uniform(20, 800), 2),
            })
    pq.write_table(pa.Table.from_pylist(rows), folder / "flows.parquet")


# -- the NGO and the police -----------------------------------------------------------

EXPLOITATION = ["SexualExploitation", "ForcedLabour", "ForcedBegging", "Servitude",
                "ForcedMarriage", "ChildLabour"]
CONTROL = ["DebtBondage", "WithholdsDocuments", "PhysicalThreats", "FalsePromises",
           "RestrictsMovement", "TakesEarnings", "PsychologicalAbuse"]
RECRUIT = ["ThroughOnlineSocialNetworks", "ThroughFriendsOrSocialEvents",
           "ThroughAnOnlineAdvertisement", "ThroughFamilyOrFamilyEvents", "AtWork"]
AGES = ["9-17", "18-20", "21-23", "24-26", "27-29", "30-38", "39-47"]
GENDERS = ["Feminine", "Masculine", "Feminine", "NonSpecifiedUnknown"]


def _case(rng: random.Random) -> dict[str, Any]:
    return {
        "passport": _passport(rng),
        "exploitation": rng.choice(EXPLOITATION),
        "controls": rng.sample(CONTROL, rng.randint(1, 3)),
        "recruitment": rng.choice(RECRUIT),
        "source": rng.choice(ORIGINS), "transit": rng.choice([*TRANSITS, None]),
        "destination": rng.choice(DESTINATIONS),
        "age": rng.choice(AGES), "gender": rng.choice(GENDERS), "date": _month(rng),
    }


def _route_cases(rng: random.Random) -> list[dict[str, Any]]:
    people = []
    for _ in range(60):
        c = _case(rng)
        c.update(exploitation="SexualExploitation", source="NG", transit="LY", destination="IT",
                 gender="Feminine", age=rng.choice(["18-20", "21-23"]),
                 date=_month(rng, "2025-01", "2025-09"))
        people.append(c)
    return people


def _safepassage(rng: random.Random, folder: Path, route: list[dict[str, Any]]) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook always has one sheet
    sheet.title = "Cases"
    sheet.append(["Case ID", "Passport No", "Exploitation", "Control methods", "Recruited via",
                  "Origin", "Transit", "Destination", "Sector", "Age group", "Gender",
                  "Registered", "Case notes"])
    cases = [_case(rng) for _ in range(1500)]
    # The NGO meets these people where they came from: no destination recorded.
    cases += [{**c, "destination": None} for c in route]
    for i, c in enumerate(cases):
        sheet.append([
            f"SP-{i:05d}", c["passport"][:2] + " " + c["passport"][2:], c["exploitation"],
            "; ".join(c["controls"]), c["recruitment"], c["source"], c["transit"],
            c["destination"], rng.choice(["A", "C", "F", "I", "T", None])
            if c["exploitation"] == "ForcedLabour" else None,
            c["age"], c["gender"], c["date"], "Survivor described the journey in detail",
        ])
    book.save(folder / "cases.xlsx")


def _metpolice(rng: random.Random, folder: Path, route: list[dict[str, Any]]) -> None:
    path = folder / "ahtu.sqlite"
    path.unlink(missing_ok=True)
    cases = [_case(rng) for _ in range(1200)]
    # The police meet the same people where they were exploited: no origin recorded.
    cases += [{**c, "source": None, "date": c["date"] + dt.timedelta(days=60)} for c in route]
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE investigations (crime_ref TEXT, victim_doc_no TEXT, offence TEXT, "
            "coercion TEXT, recruited TEXT, origin_iso TEXT, transit_iso TEXT, "
            "exploitation_iso TEXT, age_bracket TEXT, sex TEXT, opened_on TEXT, "
            "officer_in_charge TEXT, status TEXT)"
        )
        db.executemany(
            "INSERT INTO investigations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (f"MP/{i:05d}", c["passport"].lower(), c["exploitation"], "|".join(c["controls"]),
                 c["recruitment"], c["source"], c["transit"], c["destination"], c["age"],
                 c["gender"], c["date"].isoformat(), "DC Example", rng.choice(["open", "closed"]))
                for i, c in enumerate(cases)
            ],
        )
    db.close()


def write_exports(root: Path, seed: int = 2026) -> dict[str, Path]:
    """Write every demo partner's export under ``root/<slug>/``; return slug -> file."""
    rng = random.Random(seed)  # noqa: S311 - synthetic demo input, not a security use
    shared_ibans = [_iban(rng, "GB") for _ in range(40)]
    route = _route_cases(rng)
    writers = {
        "northbank": lambda f: _northbank(rng, f, shared_ibans),
        "meridiana": lambda f: _meridiana(rng, f, shared_ibans),
        "swiftsend": lambda f: _swiftsend(rng, f),
        "safepassage": lambda f: _safepassage(rng, f, route),
        "metpolice": lambda f: _metpolice(rng, f, route),
    }
    out = {}
    for partner in PARTNERS:
        folder = root / partner.slug
        folder.mkdir(parents=True, exist_ok=True)
        writers[partner.slug](folder)
        out[partner.slug] = folder / partner.export
    return out
