"""Policy change requests and what a change changes: the domain core of the four-eyes review.

* :class:`Quorum` - how many distinct governance officers (the proposer counts) and from how
  many organisations must agree before a change takes effect;
* :class:`ProposalRequest` - a proposal as a member sends it (the whole new text, or an earlier
  version to restore; an effective time; a note), and :func:`decision` - an approval's note or
  a rejection's reason;
* :func:`policy_changes` and :func:`unified_diff` - the difference between two versions, key
  by key (rules by name) and line by line; :func:`limits_json` - a policy's budget limits as
  exact strings.

No database here: :mod:`hub.governance.policychanges` stores versions and applies decisions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from hub.errors import InvalidInput, invalid_body
from hub.governance.policies import Policy
from hub.privacy.accounting import BudgetLimits

__all__ = [
    "Decision",
    "ProposalRequest",
    "Quorum",
    "decision",
    "limits_json",
    "policy_changes",
    "unified_diff",
]

MAX_TEXT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Quorum:
    """Distinct governance officers (the proposer counts) and organisations a change needs."""

    officers: int = 2
    organisations: int = 1

    def __post_init__(self) -> None:
        if self.officers < 2:
            raise ValueError("four eyes: a policy change needs at least 2 officers")
        if not 1 <= self.organisations <= self.officers:
            raise ValueError("the organisations of a quorum must be 1 to its officers")

    def missing(self, officers: set[str], orgs: set[str]) -> dict[str, int]:
        return {"officers": max(0, self.officers - len(officers)),
                "organisations": max(0, self.organisations - len(orgs))}


def _when(value: Any) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or time; naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0))
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = (datetime.combine(date.fromisoformat(text), time(0)) if len(text) == 10
                      else datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError("must be an ISO 8601 date or time, such as 2027-01-01 or "
                             "2027-01-01T09:00:00Z") from None
    else:
        raise ValueError("must be an ISO 8601 date or time")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class ProposalRequest(BaseModel):
    """The body of ``POST /v1/governance/proposals`` (docs/governance.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yaml: str | None = Field(default=None, max_length=MAX_TEXT,
                             description="The whole new policy file.")
    restore: int | None = Field(default=None, ge=1,
                                description="Or: the version number of `dataset` to restore.")
    dataset: str | None = Field(default=None, max_length=63)
    filename: str | None = Field(default=None, max_length=255,
                                 description="An uploaded file's name: <dataset>.yaml.")
    effective_at: Annotated[datetime | None, WithJsonSchema({"anyOf": [
        {"type": "string", "format": "date"}, {"type": "string", "format": "date-time"},
        {"type": "null"}]})] = Field(
        default=None, description="When the change takes effect once approved (default: "
        "at once). An ISO 8601 date or time.")
    note: str | None = Field(default=None, max_length=4000)
    dry_run: bool = Field(default=False, description="Validate and diff; store nothing.")

    @field_validator("effective_at", mode="before")
    @classmethod
    def _effective(cls, value: Any) -> datetime | None:
        return _when(value)

    @classmethod
    def parse(cls, data: Any) -> ProposalRequest:
        try:
            request = cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_body("the proposal is invalid", exc) from None
        if (request.yaml is None) == (request.restore is None):
            raise InvalidInput("give either yaml (the new policy text) or restore (a version "
                               "number), not both", field="yaml")
        if request.restore is not None and not request.dataset:
            raise InvalidInput("restore needs the dataset", field="dataset")
        return request


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str | None = Field(default=None, max_length=4000)
    reason: str | None = Field(default=None, max_length=4000)


def decision(data: Any) -> Decision:
    try:
        return Decision.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid_body("the decision is invalid", exc) from None


def limits_json(limits: BudgetLimits) -> dict[str, Any]:
    """A policy's budget limits as exact strings (audit entries, diffs)."""
    return {"measure": limits.measure.value, "global_total": str(limits.global_total),
            "per_member": str(limits.per_member), "per_query": str(limits.per_query),
            "per_month": None if limits.per_month is None else str(limits.per_month),
            "opened": limits.opened.isoformat()}


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def policy_changes(old: Policy | None, new: Policy) -> list[dict[str, Any]]:
    """What a new version changes, key by key: ``{path, before, after}``; rules by name."""
    before = old.model_dump(mode="json", by_alias=True) if old is not None else {}
    after = new.model_dump(mode="json", by_alias=True)
    old_rules = {r["name"]: r for r in before.pop("rules", [])}
    new_rules = {r["name"]: r for r in after.pop("rules", [])}
    flat_old: dict[str, Any] = {}
    flat_new: dict[str, Any] = {}
    _flat(before, "", flat_old)
    _flat(after, "", flat_new)
    out = [{"path": path, "before": flat_old.get(path), "after": flat_new.get(path)}
           for path in sorted(set(flat_old) | set(flat_new))
           if flat_old.get(path) != flat_new.get(path)]
    for name in sorted(set(old_rules) | set(new_rules)):
        if old_rules.get(name) != new_rules.get(name):
            out.append({"path": f"rules.{name}", "before": old_rules.get(name),
                        "after": new_rules.get(name)})
    return out


def unified_diff(old_text: str, new_text: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=old_name, tofile=new_name))
