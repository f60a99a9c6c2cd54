"""Synthetic partner exports for the demo: five members, each in its own format.

Every partner exports from its own systems with its own column names, codes and file format,
as real exports come, so that the demo exercises the typed mapping files and the connector
exactly as a real partner would (each mapping is in ``hub/demo/mappings/``, and commented in
``connectors/examples/``):

* **Northbank** (a UK bank, bank_alerts v2): comma CSV, day-first dates with slashes
  (``15/03/2025``), amounts in GBP with thousands commas (``1,234.56``) converted to EUR
  with a rate table, the customer's mobile number written as UK staff write it
  (``07400 123456``, ``+44 7400 123456``, foreign ones ``00 39 312 345 6789``; empty for
  some customers), and one ragged line (an analyst typed a comma into a note);
* **Banca Meridiana** (an Italian bank, bank_alerts v2): ``;`` CSV in Latin-1, local
  timestamps in Europe/Rome (``31.03.2025 23:45``, a month in UTC), decimal commas with dots
  for thousands (``1.234,56``), Italian typology names, one amount typed with its thousands
  groups wrong (``12.34,5``), Italian mobile numbers without their ``+39`` (``312 345 6789``,
  ``3123456789``), foreign ones with the international prefix (``00 44 7400 123456``), and
  e-mail addresses as customers typed them (``Giulia.Rossi@Libero.it``);
* **SwiftSend** (a money-transfer firm), two exports: its flows (corridor_flows) in Parquet,
  amounts in minor units (cents) in the sender's currency (EUR or GBP, converted with the
  rate table), phone numbers partly written without their ``+`` (``447400123456``), partly
  national with the sender's country in a column; and its compliance tool's red-flag alerts
  (bank_alerts v2) in CSV, UTC timestamps (``2025-03-14T09:12:31Z``), its own flag codes,
  each sender known by the phone number (no IBAN: a money-transfer firm holds none) and, for
  app users, the e-mail address;
* **Safe Passage Foundation** (an NGO): an Excel sheet with the NGO's own spellings (age
  bands ``18 - 20``, ``18\u201320`` with an en dash, ``?``; ``Sexual exploitation``;
  ``F``/``M``) and a citizenship column next to the origin, which the mapping acknowledges;
* **Metropolitan Police** (a police unit): a SQLite database, opened-on timestamps in
  Europe/London day-first (``28/03/2025 23:30``), ``-99`` for an unknown age, ``F``/``M``/
  ``U`` for gender.

Each carries columns that must never reach the hub (names, free-text notes, references).

Three patterns are planted that no single member can see:

* **Shared funnel accounts**: 40 beneficiary IBANs flagged by *both* banks on the RO -> GB
  corridor (funnel accounts, cash deposits with no payroll). Bank A writes the IBANs spaced
  and upper-case, bank B compact and lower-case; the connector's normalisation makes their
  tokens equal, so the overlap shows only when the banks' alerts are pooled.
* **The same persons at two banks and a money-transfer firm** (:data:`LINKED`, 360, on
  :data:`LINKED_CORRIDOR`, IT -> GB, funnel accounts): each is flagged by two or all three
  of Northbank, Banca Meridiana and SwiftSend's alerts, with a *different* IBAN at each bank
  and none at SwiftSend, so that no identifier of the privacy unit is shared. 320 gave every
  partner that knows them the same phone number (each partner writes it its own way); 40
  gave Meridiana and SwiftSend different numbers but the same e-mail address. Only the
  hub's linkage of persons (hub.ingest.linkage) finds them: counted by IBAN or phone alone
  they are at one partner each. 150 more customers on that corridor are known to one
  partner only, and 40 persons known to two partners are flagged on unrelated corridors;
  every other customer's phone number and e-mail address is their own.
* **A route split across NGO and police**: 60 people recruited in Nigeria and moved through
  Libya. The NGO records where they came from (NG, via LY) but not where they were
  exploited; the police record where they were exploited (IT, via LY) but not where they
  came from. Linked by the pseudonymised passport number, the route NG -> LY -> IT appears
  only when both are pooled.

The generator is seeded and deterministic. It uses :mod:`random` because this is *fake
input data*, not privacy noise: every DP noise sample in tahub comes from OpenDP.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sqlite3
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
from stdnum import iban as stdiban

__all__ = [
    "EXPORTS",
    "FX_RATES",
    "LINKED",
    "LINKED_CORRIDOR",
    "PARTNERS",
    "RATES_DATE",
    "DemoExport",
    "DemoPartner",
    "write_exports",
    "write_rates",
]

# Where money and people move in the demo, roughly as in published corridor and route data.
ORIGINS = ["RO", "BG", "NG", "VN", "AL", "UA", "MD", "PH", "IN", "CN", "BR", "ER", "SY", "PK"]
DESTINATIONS = ["GB", "IT", "DE", "FR", "ES", "NL", "BE", "GR", "AE", "US"]
TRANSITS = ["LY", "TR", "RS", "HU", "AT", "NE", "MA", "MX"]


@dataclass(frozen=True)
class DemoExport:
    """One export a demo partner pushes, to one contract."""

    key: str  # names its mapping (hub/demo/mappings/<key>.yaml) and its file in write_exports
    dataset: str
    contract_version: int
    file: str  # file name of the export in the partner's folder


@dataclass(frozen=True)
class DemoPartner:
    slug: str
    name: str
    kind: str  # hub.actors.MemberKind value
    exports: tuple[DemoExport, ...]  # what the partner pushes, in order


PARTNERS = [
    DemoPartner("northbank", "Northbank plc", "bank", (
        DemoExport("northbank", "bank_alerts", 2, "alerts_export.csv"),)),
    DemoPartner("meridiana", "Banca Meridiana", "bank", (
        DemoExport("meridiana", "bank_alerts", 2, "segnalazioni.csv"),)),
    DemoPartner("swiftsend", "SwiftSend Remittances", "money_transfer", (
        DemoExport("swiftsend", "corridor_flows", 1, "flows.parquet"),
        DemoExport("swiftsend.bank_alerts", "bank_alerts", 2, "red_flags.csv"))),
    DemoPartner("safepassage", "Safe Passage Foundation", "ngo", (
        DemoExport("safepassage", "case_records", 2, "cases.xlsx"),)),
    DemoPartner("metpolice", "Metropolitan Police Anti-Trafficking Unit", "law_enforcement", (
        DemoExport("metpolice", "case_records", 1, "ahtu.sqlite"),)),
]
#: Every export of every partner, in the order the demo pushes them.
EXPORTS = [e for p in PARTNERS for e in p.exports]


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


# -- persons: the phone numbers and e-mail addresses the partners hold ------------------

#: The corridor (origin, destination) of the persons planted across partners.
LINKED_CORRIDOR = ("IT", "GB")
# Planted on LINKED_CORRIDOR, by the partners that flag each person (1-3 alerts at each): a
# GB IBAN at Northbank, another (IT) at Banca Meridiana, and the same phone number wherever
# the person is known, written in each partner's own way...
_LINKED_BY_PHONE = {("northbank", "meridiana", "swiftsend"): 80, ("northbank", "meridiana"): 100,
                    ("northbank", "swiftsend"): 80, ("meridiana", "swiftsend"): 60}
# ... or a different phone number at each partner, and the same e-mail address.
_LINKED_BY_EMAIL = 40  # at Banca Meridiana and SwiftSend, the two that hold e-mail addresses
#: The persons flagged on LINKED_CORRIDOR by two or more partners.
LINKED = sum(_LINKED_BY_PHONE.values()) + _LINKED_BY_EMAIL
# Customers on LINKED_CORRIDOR that only one partner knows (they count, but are not linked).
_CORRIDOR_ALONE = {"northbank": 60, "meridiana": 50, "swiftsend": 40}
# A few persons known to two partners, each flagging them on a corridor of its own.
_ELSEWHERE = {("northbank", "meridiana"): 20, ("northbank", "swiftsend"): 20}

_FIRST = ["giulia", "marco", "chiara", "luca", "francesca", "sara", "alessandro", "emma",
          "olivia", "james", "grace", "blessing", "chioma", "emeka", "ioana", "andrei", "elena",
          "mihai", "ngoc", "linh", "arben", "elira", "olena", "maria", "joy", "precious"]
_LAST = ["rossi", "bianchi", "esposito", "romano", "colombo", "ricci", "smith", "jones",
         "taylor", "brown", "okafor", "adeyemi", "eze", "popescu", "ionescu", "nguyen", "tran",
         "hoxha", "shevchenko", "bondarenko", "mensah", "silva", "khan", "ferrari"]
# Where the banks' customers' foreign phone numbers are from.
_ABROAD = {"GB": ["IT", "RO", "PL", "FR"], "IT": ["GB", "RO", "DE", "AL"]}
_DOMAINS = ["gmail.com", "libero.it", "outlook.com", "yahoo.co.uk", "hotmail.it",
            "virgilio.it", "icloud.com", "proton.me"]


class _Identities:
    """The persons' phone numbers and e-mail addresses, each handed out once: partners share
    one only where a pattern plants it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._seen: set[str] = set()

    def phone(self, region: str) -> phonenumbers.PhoneNumber:
        while True:
            number = _mobile(self.rng, region)
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 not in self._seen:
                self._seen.add(e164)
                return number

    def email(self) -> str:
        rng = self.rng
        while True:
            digits = rng.choice(["", str(rng.randint(1, 99)), str(rng.randint(1960, 2004))])
            address = (f"{rng.choice(_FIRST)}{rng.choice(['.', '_', ''])}{rng.choice(_LAST)}"
                       f"{digits}@{rng.choice(_DOMAINS)}")
            if address not in self._seen:
                self._seen.add(address)
                return address


@dataclass(frozen=True)
class _Customer:
    """A person as one partner knows them, and the alerts that partner raises on them."""

    phone: phonenumbers.PhoneNumber | None
    email: str | None
    origin: str
    destination: str
    alerts: int
    on_corridor: bool  # flagged on LINKED_CORRIDOR


def _persons(ids: _Identities) -> dict[str, list[_Customer]]:
    """The customers the banks' and SwiftSend's alerts add to their own: the persons planted
    on LINKED_CORRIDOR, customers alone on it, and a few persons at two partners elsewhere."""
    rng = ids.rng
    out: dict[str, list[_Customer]] = {"northbank": [], "meridiana": [], "swiftsend": []}
    origin, destination = LINKED_CORRIDOR
    for partners, n in _LINKED_BY_PHONE.items():
        for _ in range(n):
            phone, email = ids.phone(rng.choice(["GB", "IT"])), ids.email()
            for slug in partners:  # Northbank keeps no e-mail; the others most of the time
                mail = email if slug != "northbank" and rng.random() < 0.6 else None
                out[slug].append(_Customer(phone, mail, origin, destination,
                                           rng.randint(1, 3), True))
    for _ in range(_LINKED_BY_EMAIL):
        email = ids.email()
        for slug in ("meridiana", "swiftsend"):
            out[slug].append(_Customer(ids.phone(rng.choice(["GB", "IT"])), email, origin,
                                       destination, rng.randint(1, 3), True))
    for slug, n in _CORRIDOR_ALONE.items():
        for _ in range(n):
            mail = ids.email() if slug != "northbank" and rng.random() < 0.6 else None
            out[slug].append(_Customer(ids.phone(rng.choice(["GB", "IT"])), mail, origin,
                                       destination, rng.randint(1, 3), True))
    for partners, n in _ELSEWHERE.items():
        for _ in range(n):
            region = rng.choice(["GB", "IT"])
            phone = ids.phone(region)
            for slug in partners:
                here = ((region, rng.choice(ORIGINS)) if slug == "swiftsend"
                        else (rng.choice(ORIGINS), rng.choice(DESTINATIONS)))
                out[slug].append(_Customer(phone, None, *here, rng.randint(1, 2), False))
    return out


def _customer_alerts(rng: random.Random, customers: list[_Customer],
                     iban_country: str | None) -> Iterator[dict[str, Any]]:
    """Alert rows of ``customers`` in contract codes (an IBAN of ``iban_country`` each, or
    none), like :func:`_alerts`' rows, with the customer's phone and e-mail."""
    indicators = list(NORTHBANK_RULES.values())
    for c in customers:
        subject = _iban(rng, iban_country) if iban_country else None
        for _ in range(c.alerts):
            yield {
                "subject": subject, "phone": c.phone, "email": c.email,
                "indicator": rng.choice(["cash_deposits_no_payroll", "rapid_movement_of_funds",
                                         "threshold_avoidance"])
                if c.on_corridor else rng.choice(indicators),
                "typology": "funnel_account" if c.on_corridor else rng.choice(
                    list(NORTHBANK_TYPOLOGY.values())),
                "stream": "sexual_exploitation" if c.on_corridor else rng.choice(
                    ["sexual_exploitation", "forced_labour", None, None]),
                "origin": c.origin, "destination": c.destination,
                "amount": round(rng.lognormvariate(6.5, 1.2), 2),
                "date": _month(rng, "2025-01", "2025-09") if c.on_corridor else _month(rng),
            }


def _background_phone(ids: _Identities, home: str,
                      abroad: list[str]) -> phonenumbers.PhoneNumber | None:
    """A background customer's own phone number: mostly of the bank's country, some foreign,
    and none on file for some customers."""
    rng = ids.rng
    if rng.random() < 0.08:
        return None
    return ids.phone(home if rng.random() < 0.85 else rng.choice(abroad))


def _written(rng: random.Random, number: phonenumbers.PhoneNumber | None, home: str) -> str:
    """A phone number as a bank in ``home`` writes it: its own country's numbers national or
    international, foreign ones international or with the international prefix (00 44 ...)."""
    if number is None:
        return ""
    fmt = phonenumbers.PhoneNumberFormat
    if phonenumbers.region_code_for_number(number) == home:
        style = rng.choice(["national", "national", "international", "e164"])
        written = phonenumbers.format_number(number, {
            "national": fmt.NATIONAL, "international": fmt.INTERNATIONAL, "e164": fmt.E164,
        }[style])
        return written.replace(" ", "") if rng.random() < 0.2 else written
    if rng.random() < 0.5:
        return phonenumbers.format_out_of_country_calling_number(number, home)  # "00 39 312..."
    return phonenumbers.format_number(number, fmt.INTERNATIONAL)


def _typed(rng: random.Random, email: str | None) -> str:
    """An e-mail address as a customer typed it into a bank's form."""
    if email is None:
        return ""
    local, domain = email.split("@")
    return rng.choice([email, email, f"{local.capitalize()}@{domain}",
                       f"{local.title()}@{domain.capitalize()}", email.upper()])


#: EUR reference rates the demo partners convert with (units of each currency per EUR).
RATES_DATE = "2025-06-30"
FX_RATES = {"GBP": "0.8457", "USD": "1.0823", "CHF": "0.9415", "RON": "4.9763"}


def write_rates(folder: Path) -> Path:
    """The rate table a partner keeps next to its mapping (``rates: {file: fx_rates.csv}``)."""
    path = folder / "fx_rates.csv"
    rows = "".join(f"{code},{rate}\n" for code, rate in FX_RATES.items())
    path.write_text("currency,units_per_EUR\n" + rows, encoding="utf-8")
    return path


def _gbp(eur: float) -> str:
    return f"{eur * float(FX_RATES['GBP']):,.2f}"  # "1,234.56"


def _northbank(rng: random.Random, ids: _Identities, folder: Path, shared: list[str],
               phones: dict[str, phonenumbers.PhoneNumber], extra: list[_Customer]) -> None:
    rule_of = {v: k for k, v in NORTHBANK_RULES.items()}
    typ_of = {v: k for k, v in NORTHBANK_TYPOLOGY.items()}
    header = ["alert_ref", "alert_date", "customer_name", "customer_iban", "customer_mobile",
              "rule", "typology_code", "stream", "amount_gbp", "from_country", "to_country",
              "analyst_notes"]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)

    def row(i: int, a: dict[str, Any], name: int) -> list[str]:
        return [
            f"NB-{i:06d}", a["date"].strftime("%d/%m/%Y"),
            f"Customer {name}",  # never leaves the bank
            _spaced(a["subject"]), _written(ids.rng, a["phone"], "GB"),
            rule_of[a["indicator"]], typ_of[a["typology"]], a["stream"] or "",
            _gbp(a["amount"]), a["origin"], a["destination"],
            "Customer seen depositing cash with a man who held her documents",
        ]

    n, hits = 6000, 120
    for i, a in enumerate(_alerts(rng, n, shared, hits)):
        a["phone"] = phones.get(a["subject"]) or _background_phone(ids, "GB", _ABROAD["GB"])
        cells = row(i, a, rng.randint(1, 10**6))
        if i == 4321:  # an analyst typed a comma into a note; the export did not quote it
            out.write(",".join([*cells[:-1], "Deposits in Leeds, Bradford and York"]) + "\n")
            continue
        writer.writerow(cells)
    for i, a in enumerate(_customer_alerts(ids.rng, extra, "GB"), start=n + hits):
        writer.writerow(row(i, a, ids.rng.randint(1, 10**6)))
    (folder / "alerts_export.csv").write_text(out.getvalue(), encoding="utf-8")
    write_rates(folder)


def _meridiana(rng: random.Random, ids: _Identities, folder: Path, shared: list[str],
               phones: dict[str, phonenumbers.PhoneNumber], extra: list[_Customer]) -> None:
    typ_of = {v: k for k, v in MERIDIANA_TYPOLOGY.items()}
    lines = ["data_segnalazione;iban_cliente;cellulare;email_cliente;indicatore;tipologia;"
             "importo;paese_origine;paese_destinazione;note"]

    def line(a: dict[str, Any], when: dt.datetime, amount: str) -> str:
        return ";".join([
            when.strftime("%d.%m.%Y %H:%M"), a["subject"].lower(),
            _written(ids.rng, a["phone"], "IT"), _typed(ids.rng, a["email"]),
            a["indicator"], typ_of[a["typology"]], amount, a["origin"], a["destination"],
            "Versamenti in contanti in più città",  # Latin-1 accent on purpose
        ])

    def euros(value: float) -> str:
        whole, cents = divmod(round(value * 100), 100)
        return f"{whole:,}".replace(",", ".") + f",{cents:02d}"  # "1.234,56"

    for i, a in enumerate(_alerts(rng, 4000, shared, 90)):
        when = dt.datetime.combine(a["date"], dt.time(rng.randint(0, 23), rng.randint(0, 59)))
        if i == 17:  # 1 April, 00:30 in Rome is still 31 March in UTC: month 2025-03
            when = dt.datetime(2025, 4, 1, 0, 30)
        amount = euros(a["amount"])
        if i == 2500:
            amount = "12.34,5"  # typed by hand: thousands groups wrong, rejected
        a["phone"] = phones.get(a["subject"]) or _background_phone(ids, "IT", _ABROAD["IT"])
        a["email"] = None if a["subject"] in phones else (
            ids.email() if ids.rng.random() < 0.6 else None)
        lines.append(line(a, when, amount))
    for a in _customer_alerts(ids.rng, extra, "IT"):
        when = dt.datetime.combine(a["date"], dt.time(ids.rng.randint(8, 19),
                                                      ids.rng.randint(0, 59)))
        lines.append(line(a, when, euros(a["amount"])))
    (folder / "segnalazioni.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


# -- the money-transfer firm ----------------------------------------------------------

PAYOUT = {"CASH": "cash_pickup", "BANK": "bank_account", "WALLET": "mobile_wallet",
          "CARD": "prepaid_card"}


def _msisdn(rng: random.Random, number: phonenumbers.PhoneNumber, region: str) -> str:
    """A sender's number as SwiftSend's systems keep it: international, E.164, without its
    + (``447400123456``), or national (the sender's country is in its own column)."""
    # Italian mobiles have no trunk 0 ("312 643 3984"): written internationally there.
    styles = ["international", "e164", "no_plus"] + (["national"] if region != "IT" else [])
    style = rng.choice(styles)
    if style == "no_plus":  # the country code, but no +: 447400123456
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
    return phonenumbers.format_number(number, {
        "national": phonenumbers.PhoneNumberFormat.NATIONAL,
        "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        "e164": phonenumbers.PhoneNumberFormat.E164,
    }[style])


def _swiftsend(rng: random.Random, folder: Path) -> list[tuple[phonenumbers.PhoneNumber, str]]:
    """The flows export; returns its (background) senders and their countries."""
    senders = [(_mobile(rng, r), r) for r in rng.choices(["DE", "IT", "GB", "FR"], k=3000)]
    planted = [(_mobile(rng, "IT"), "IT") for _ in range(80)]  # IT -> NG earnings remitted
    rows: list[dict[str, Any]] = []
    for number, region in senders + planted:
        is_planted = (number, region) in planted
        currency = "GBP" if region == "GB" else "EUR"
        for _ in range(rng.randint(1, 6)):
            written = _msisdn(rng, number, region)
            eur = rng.uniform(900, 3000) if is_planted else rng.uniform(20, 800)
            rate = float(FX_RATES["GBP"]) if currency == "GBP" else 1.0
            rows.append({
                "sender_msisdn": written,
                "sender_region": region,
                "corridor_from": region,
                "corridor_to": "NG" if is_planted else rng.choice(ORIGINS),
                "payout": "CASH" if is_planted else rng.choice(list(PAYOUT)),
                "month": _month(rng, "2025-01", "2025-06") if is_planted else _month(rng),
                "txn_count": rng.randint(4, 20) if is_planted else rng.randint(1, 5),
                "total_minor": round(eur * rate * 100),  # in cents (pence), as the ledger keeps it
                "ccy": currency,
            })
    pq.write_table(pa.Table.from_pylist(rows), folder / "flows.parquet")
    write_rates(folder)
    return senders


# SwiftSend's compliance tool: its own red-flag codes and typology names.
SWIFTSEND_FLAGS = {"STRUCT": "threshold_avoidance", "RAPID": "rapid_movement_of_funds",
                   "CASHFUND": "cash_deposits_no_payroll",
                   "3PLIVING": "pays_third_party_living_costs",
                   "PREPAID": "frequent_prepaid_card_purchases",
                   "3PSPEAKS": "third_party_speaks_for_customer", "OTHER": "other"}
SWIFTSEND_TYPOLOGY = {"Funnel account": "funnel_account", "Front company": "front_company",
                      "Labour exploitation": "exploitative_employment",
                      "Alternative payments": "alternative_payment",
                      "Undetermined": "unknown"}


def _swiftsend_alerts(ids: _Identities, folder: Path,
                      senders: list[tuple[phonenumbers.PhoneNumber, str]],
                      extra: list[_Customer]) -> None:
    """Red-flag alerts on senders, from SwiftSend's compliance tool (CSV, UTC timestamps):
    a sender is known by the phone number (no IBAN) and, for app users, an e-mail address."""
    rng = ids.rng
    flag_of = {v: k for k, v in SWIFTSEND_FLAGS.items()}
    typ_of = {v: k for k, v in SWIFTSEND_TYPOLOGY.items()}
    customers = [
        _Customer(number, ids.email() if rng.random() < 0.5 else None, region,
                  rng.choice(ORIGINS), rng.randint(1, 2), False)
        for number, region in rng.sample(senders, 600)
    ] + extra
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["case_id", "flagged_at", "sender_msisdn", "sender_country", "sender_email",
                     "receiver_name", "flag_code", "typology", "send_country", "receive_country",
                     "amount_minor", "ccy", "analyst_comment"])
    for i, a in enumerate(_customer_alerts(rng, customers, None)):
        region = phonenumbers.region_code_for_number(a["phone"]) or a["origin"]
        currency = "GBP" if a["origin"] == "GB" else "EUR"
        rate = float(FX_RATES["GBP"]) if currency == "GBP" else 1.0
        flag = a["indicator"] if a["indicator"] in flag_of else "other"
        when = dt.datetime.combine(a["date"], dt.time(rng.randint(0, 23), rng.randint(0, 59),
                                                      rng.randint(0, 59)))
        writer.writerow([
            f"SS-RF-{i:05d}", when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            _msisdn(rng, a["phone"], region), region, a["email"] or "",
            f"Receiver {rng.randint(1, 10**5)}",  # never leaves SwiftSend
            flag_of[flag], typ_of[a["typology"]], a["origin"], a["destination"],
            round(a["amount"] * rate * 100), currency,
            "Several senders pay the same receiver in cash",
        ])
    (folder / "red_flags.csv").write_text(out.getvalue(), encoding="utf-8")


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


# How the NGO's case sheet spells what the contract codes (its own habits, not errors).
NGO_AGES = {"9-17": ["9-17", "9 - 17"], "18-20": ["18 - 20", "18\u201320", "18-20"],
            "21-23": ["21 - 23", "21-23"], "24-26": ["24 - 26"], "27-29": ["27 - 29"],
            "30-38": ["30 - 38", "30\u201338"], "39-47": ["39 - 47"]}  # fmt: skip
NGO_EXPLOITATION = {"SexualExploitation": "Sexual exploitation",
                    "ForcedLabour": "Forced labour", "ForcedBegging": "Forced begging",
                    "Servitude": "Servitude", "ForcedMarriage": "Forced marriage",
                    "ChildLabour": "Child labour"}  # fmt: skip
NGO_GENDER = {"Feminine": "F", "Masculine": "M", "NonSpecifiedUnknown": "n/k"}


def _safepassage(rng: random.Random, folder: Path, route: list[dict[str, Any]]) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook always has one sheet
    sheet.title = "Cases"
    sheet.append(["Case ID", "Passport No", "Exploitation", "Control methods", "Recruited via",
                  "Origin", "Citizenship", "Transit", "Destination", "Sector", "Age group",
                  "Gender", "Registered", "Case notes"])
    cases = [_case(rng) for _ in range(1500)]
    # The NGO meets these people where they came from: no destination recorded.
    cases += [{**c, "destination": None} for c in route]
    for i, c in enumerate(cases):
        age = "?" if rng.random() < 0.03 else rng.choice(NGO_AGES[c["age"]])
        sheet.append([
            f"SP-{i:05d}", c["passport"][:2] + " " + c["passport"][2:],
            NGO_EXPLOITATION[c["exploitation"]], "; ".join(c["controls"]), c["recruitment"],
            c["source"], c["source"] if rng.random() < 0.9 else rng.choice(ORIGINS),
            c["transit"], c["destination"], rng.choice(["A", "C", "F", "I", "T", None])
            if c["exploitation"] == "ForcedLabour" else None,
            age, NGO_GENDER[c["gender"]], c["date"], "Survivor described the journey in detail",
        ])
    book.save(folder / "cases.xlsx")


POLICE_GENDER = {"Feminine": "F", "Masculine": "M", "NonSpecifiedUnknown": "U"}


def _opened(rng: random.Random, day: dt.date) -> str:
    """Day-first, London local time ("28/03/2025 23:30"), as the case system prints it."""
    when = dt.datetime.combine(day, dt.time(rng.randint(7, 23), rng.choice([0, 15, 30, 45])))
    return when.strftime("%d/%m/%Y %H:%M")


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
                 c["recruitment"], c["source"], c["transit"], c["destination"],
                 "-99" if i % 40 == 7 else c["age"], POLICE_GENDER[c["gender"]],
                 _opened(rng, c["date"]), "DC Example", rng.choice(["open", "closed"]))
                for i, c in enumerate(cases)
            ],
        )
    db.close()


def write_exports(root: Path, seed: int = 2026) -> dict[str, Path]:
    """Write every demo export under ``root/<slug>/``; return export key -> file."""
    rng = random.Random(seed)  # noqa: S311 - synthetic demo input, not a security use
    # The customers' phone numbers and e-mail addresses, and the persons planted across
    # partners, come from a stream of their own: the rest of every export stays as it was.
    ids = _Identities(random.Random(f"{seed}:persons"))  # noqa: S311 - as above
    shared_ibans = [_iban(rng, "GB") for _ in range(40)]
    shared_phones = {iban: ids.phone("GB") for iban in shared_ibans}
    route = _route_cases(rng)
    extra = _persons(ids)
    senders: list[tuple[phonenumbers.PhoneNumber, str]] = []
    writers: dict[str, Callable[[Path], None]] = {
        "northbank": lambda f: _northbank(rng, ids, f, shared_ibans, shared_phones,
                                          extra["northbank"]),
        "meridiana": lambda f: _meridiana(rng, ids, f, shared_ibans, shared_phones,
                                          extra["meridiana"]),
        "swiftsend": lambda f: senders.extend(_swiftsend(rng, f)),
        "swiftsend.bank_alerts": lambda f: _swiftsend_alerts(ids, f, senders,
                                                             extra["swiftsend"]),
        "safepassage": lambda f: _safepassage(rng, f, route),
        "metpolice": lambda f: _metpolice(rng, f, route),
    }
    out = {}
    for partner in PARTNERS:
        folder = root / partner.slug
        folder.mkdir(parents=True, exist_ok=True)
        for export in partner.exports:
            writers[export.key](folder)
            out[export.key] = folder / export.file
    return out
