"""The closed code lists a tag may take: HTCDS v2.0, ISO 3166, route roles and CTDC age bands.

Every code the tagger emits is one of these; the lexicons are validated against them when
they load, so a misspelt code in a data file fails at start-up, not in a reviewer's queue.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "AGE_BANDS",
    "AGE_GROUPS",
    "CONTROL",
    "EXPLOITATION_TYPES",
    "FIELDS",
    "GENDERS",
    "LABEL_FIELDS",
    "RECRUITMENT",
    "ROLES",
    "TRANSPORT",
    "Field",
    "LabelField",
    "Role",
    "age_band",
    "codes_of",
]

Field = Literal["exploitation_type", "location", "recruitment", "transport", "control",
                "age_group", "age", "gender", "incident_period"]
LabelField = Literal["exploitation_type", "recruitment", "transport", "control"]
Role = Literal["origin", "transit", "destination"]

FIELDS: Final[tuple[Field, ...]] = ("exploitation_type", "location", "recruitment", "transport",
                                    "control", "age_group", "age", "gender", "incident_period")
LABEL_FIELDS: Final[tuple[LabelField, ...]] = ("exploitation_type", "recruitment", "transport",
                                               "control")
ROLES: Final[tuple[Role, ...]] = ("origin", "transit", "destination")

# HTCDS v2.0 TypeOfExploitation
EXPLOITATION_TYPES: Final = (
    "ForcedLabour", "SexualExploitation", "ChildLabour", "ForcedMarriage", "Servitude",
    "ForcedMilitaryByNonStateActors", "OrganRemoval", "ForcedBegging", "ForcedAdoption",
    "Surrogacy", "Other",
)
# HTCDS v2.0 MethodOfRecruitment
RECRUITMENT: Final = (
    "AtAPlaceOfBusiness", "AtAnEducationalInstitution", "AtWork", "ThroughOnlineSocialNetworks",
    "ThroughAnOnlineAdvertisement", "ThroughATelevisionAdvert", "ThroughANewspaperAdvert",
    "ThroughFamilyOrFamilyEvents", "ThroughFriendsOrSocialEvents", "Other",
)
# HTCDS v2.0 MethodsOfControl
CONTROL: Final = (
    "PhysicalThreats", "ThreatsLawEnforcement", "ThreatensChildrenFamily", "DebtBondage",
    "FalsePromises", "PhysicalAbuse", "SexualAbuse", "TakesEarnings", "RestrictsFinancialAccess",
    "RestrictsMedicalCare", "WithholdsNecessities", "PsychologicalAbuse", "PsychoactiveSubstance",
    "ExcessiveWorkingHours", "WithholdsDocuments", "RestrictsMovement", "UsesChildren", "Other",
)
# the means of transport of a route (tahub's list; HTCDS records it as free text)
TRANSPORT: Final = ("Air", "Road", "Rail", "Water", "OnFoot")
# HTCDS v2.0 gender
GENDERS: Final = ("Feminine", "Masculine", "TransgenderFeminine", "TransgenderMasculine",
                  "NonConforming", "NonSpecifiedUnknown")
AGE_GROUPS: Final = ("minor", "adult", "both")
# CTDC age bands: (label, lowest age, highest age or None for open)
AGE_BANDS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("0-8", 0, 8), ("9-17", 9, 17), ("18-20", 18, 20), ("21-23", 21, 23), ("24-26", 24, 26),
    ("27-29", 27, 29), ("30-38", 30, 38), ("39-47", 39, 47), ("48+", 48, None),
)

_BY_FIELD: Final[dict[str, tuple[str, ...]]] = {
    "exploitation_type": EXPLOITATION_TYPES, "recruitment": RECRUITMENT,
    "transport": TRANSPORT, "control": CONTROL, "gender": GENDERS,
}


def codes_of(field: str) -> tuple[str, ...]:
    """The closed list of codes of a classified field (exploitation_type, recruitment,
    transport, control, gender)."""
    try:
        return _BY_FIELD[field]
    except KeyError:
        raise ValueError(f"{field!r} has no closed code list") from None


def age_band(age: int) -> str:
    """The CTDC age band of an exact age in years (``age_band(16) == "9-17"``)."""
    if age < 0:
        raise ValueError(f"an age cannot be negative: {age}")
    for label, low, high in AGE_BANDS:
        if low <= age and (high is None or age <= high):
            return label
    raise AssertionError("the bands cover every age")  # pragma: no cover
