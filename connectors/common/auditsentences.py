"""Audit entries as sentences, for the command lines: "Ana Silva (Banca Italia) ran a query on
bank_alerts costing rho 0.1.", and the entry's fields as ``key: value`` lines, never JSON.

One sentence per action of :class:`hub.governance.audit.Action` (:data:`SENTENCES`; a test
fails when an action has none); the web interface's are ``hub/web/static/auditlog.js``, the
same sentences. Names come from :class:`~connectors.common.names.Names`, amounts are
decimals (:mod:`connectors.common.amounts`); ids and exact amounts stay in the exports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from connectors.common.amounts import amount, size_text
from connectors.common.names import Names

__all__ = ["SENTENCES", "detail_lines", "sentence"]

_LIMITS = {"global_total": "global", "per_member": "per member", "per_query": "per query",
           "per_month": "per month"}


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a sentence is made of: the entry's fields, and its names in words."""

    e: Mapping[str, Any]
    d: Mapping[str, Any]
    names: Names

    @property
    def who(self) -> str:  # the actor, with its organisation
        return self.names.who(self.e.get("actor"), self.e.get("org"))

    @property
    def admin(self) -> str:  # the actor alone: the hub or its administrator
        return self.names.who(self.e.get("actor") or "hub:")

    @property
    def org(self) -> str:
        return self.names.org(self.e.get("org")) or "an organisation"

    @property
    def person(self) -> str:  # the person the entry is about
        about = (self.e.get("object_id") if self.e.get("object_type") == "person"
                 else self.e.get("actor"))
        return self.names.who(about, self.e.get("org"))

    @property
    def dataset(self) -> str:
        return str(self.e.get("dataset") or "a dataset")

    @property
    def cost(self) -> str:
        return _cost(self.d.get("cost"))

    @property
    def policy(self) -> str:
        return f"version {self.d.get('version', '?')} of the {self.e.get('dataset') or '?'} policy"


def _cost(cost: Any) -> str:
    if not isinstance(cost, Mapping):
        return "-"
    text = amount(cost.get("amount"), cost.get("measure"))
    delta = cost.get("delta")
    return text + (f", delta {amount(delta)}" if delta and delta != "0" else "")


def _because(text: Any) -> str:
    return f": {text}" if text else ""


def _roles(values: Any) -> str:
    items = [str(v) for v in values or []]
    return ("the role " if len(items) == 1 else "the roles ") + (", ".join(items) or "none")


def _errors(n: Any) -> str:
    return f" ({_rows(n)} error{'' if n == 1 else 's'})" if n else ""


def _rows(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n if n is not None else "")


def _audience(value: Any, names: Names) -> str:
    if value in (None, "all"):
        return "every member"
    return ", ".join(names.org(v) for v in (value if isinstance(value, list) else [value]))


def _budget_changes(d: Mapping[str, Any]) -> str:
    before, after = d.get("before") or {}, d.get("after") or {}
    measure = after.get("measure") or before.get("measure")
    changed = [k for k in _LIMITS if before.get(k) != after.get(k)]
    if not changed:
        return ""
    return ": " + "; ".join(
        f"{_LIMITS[k]} {amount(before.get(k), measure) if before.get(k) else 'none'} -> "
        f"{amount(after.get(k), measure) if after.get(k) else 'none'}" for k in changed)


def _source(d: Mapping[str, Any]) -> str:
    where = ": ".join(str(d[k]) for k in ("kind", "location") if d.get(k))
    return f"the open source {d.get('name') or '?'}" + (f" ({where})" if where else "")


def _source_changes(changed: Any) -> str:
    if not isinstance(changed, Mapping) or not changed:
        return ""
    return ": " + ", ".join(f"{k} {v[0]} -> {v[1]}" if isinstance(v, list) and len(v) == 2
                            else str(k) for k, v in changed.items())


def _tag_count(n: Any) -> str:
    return "" if n is None else f" ({n} tag{'' if n == 1 else 's'})"


def _tag_changes(d: Mapping[str, Any]) -> str:
    parts = [f"{d[k]} {k}" for k in ("kept", "added", "removed") if d.get(k) is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _refused(p: _Parts) -> str:
    d = p.d
    what = f"{d.get('method') or ''} {d.get('route') or ''}".strip()
    why = ", ".join(str(v) for v in (d.get("status"), d.get("code"), d.get("rule")) if v)
    count = d.get("count")
    return (f"the hub refused {p.who}: {what} ({why})"
            + (f", {count} times" if isinstance(count, int) and count > 1 else ""))


def _committed(p: _Parts) -> str:
    if p.d.get("duplicate"):
        return f"{p.who} sent {p.dataset} an extract the hub already had"
    return f"{p.who} added an extract of {_rows(p.d.get('rows'))} rows to {p.dataset}"


def _sign_in_failed(p: _Parts) -> str:
    start = (f"{p.who} failed to sign in" if p.e.get("actor")
             else "a sign-in by someone the hub does not know failed")
    method = p.d.get("method")
    return start + (f" ({method})" if method else "") + _because(p.d.get("reason"))


#: action -> its sentence (without the final full stop), from the entry's parts.
SENTENCES: dict[str, Callable[[_Parts], str]] = {
    "auth.token_issued": lambda p: f"{p.who} received an access token" + (
        f" (signed in through {p.d['client_id']})" if p.d.get("client_id") else ""),
    "auth.token_refused": lambda p: "the hub refused a token to " + (
        p.who if p.e.get("actor") else "an unknown client") + _because(p.d.get("error")),
    "auth.bearer_refused": lambda p: "the hub refused a request's access token"
    + _because(p.d.get("reason")),
    "auth.signed_in": lambda p: f"{p.who} signed in" + (
        f" ({p.d['method']})" if p.d.get("method") else ""),
    "auth.sign_in_failed": _sign_in_failed,
    "auth.refresh_reused": lambda p: f"a used refresh token of {p.person} came back: the "
    "sessions it began were ended",
    "member.registered": lambda p: f"{p.admin} registered {p.org} as a member" + (
        f" ({str(p.d['kind']).replace('_', ' ')})" if p.d.get("kind") else ""),
    "member.limits_set": lambda p: f"{p.admin} set the extract limits of {p.org}",
    "person.added": lambda p: f"{p.admin} added {p.person} with "
    f"{_roles(p.d.get('roles'))}",
    "person.linked": lambda p: f"{p.person} was linked to their identity at "
    f"{p.d.get('issuer') or 'an external provider'}",
    "person.password_set": lambda p: f"{p.admin} set the password of {p.person}",
    "person.roles_set": lambda p: f"{p.admin} gave {p.person} {_roles(p.d.get('roles'))}",
    "person.disabled": lambda p: f"{p.admin} disabled {p.person}",
    "client.added": lambda p: f"{p.admin} added a client to {p.org} with "
    f"{_roles(p.d.get('roles'))}",
    "client.revoked": lambda p: f"{p.admin} revoked a client of {p.org}",
    "upload.started": lambda p: f"{p.who} started an upload to {p.dataset}" + (
        f" ({size_text(p.d['size'])})" if p.d.get("size") else ""),
    "upload.committed": _committed,
    "upload.rejected": lambda p: f"the hub rejected an upload by {p.who} to {p.dataset}"
    + (f": {p.d['code']}" if p.d.get("code") else "")
    + _errors(p.d.get("total_errors")),
    "upload.aborted": lambda p: f"{p.who} abandoned an upload to {p.dataset}",
    "extract.withdrawn": lambda p: f"{p.who} withdrew an extract of "
    f"{_rows(p.d.get('rows'))} rows from {p.dataset}",
    "query.charged": lambda p: f"{p.who} ran a query on {p.dataset} costing {p.cost}",
    "query.released": lambda p: f"the answer to a query by {p.who} on {p.dataset} was "
    "released",
    "query.failed": lambda p: f"a query by {p.who} on {p.dataset} failed; its cost {p.cost} "
    "stays spent" + _because(p.d.get("reason")),
    "query.reused": lambda p: f"{p.who} asked a query on {p.dataset} again: the stored "
    "answer, free",
    "policy.loaded": lambda p: f"{p.admin} loaded {p.policy}" + (
        f" from {p.d['file']}" if p.d.get("file") else ""),
    "policy.refused": lambda p: f"{p.admin} refused the policy file "
    f"{p.d.get('file') or p.e.get('object_id') or '?'}"
    + _errors(p.d.get("errors")),
    "policy.proposed": lambda p: f"{p.who} proposed {p.policy}",
    "policy.approved": lambda p: f"{p.who} approved {p.policy}" + (
        " (quorum reached)" if p.d.get("quorum_reached") else ""),
    "policy.rejected": lambda p: f"{p.who} rejected {p.policy}" + _because(p.d.get("reason")),
    "policy.withdrawn": lambda p: f"{p.who} withdrew {p.policy}",
    "policy.superseded": lambda p: f"{p.policy} was superseded" + (
        f" by version {p.d['by_version']}" if p.d.get("by_version") else ""),
    "policy.activated": lambda p: f"{p.policy} became active",
    "budget.changed": lambda p: f"the budget of {p.dataset} changed with version "
    f"{p.d.get('version', '?')}{_budget_changes(p.d)}",
    "release.published": lambda p: f"{p.who} published a release of {p.dataset} to "
    f"{_audience(p.d.get('audience'), p.names)}",
    "release.updated": lambda p: f"{p.who} updated a release of {p.dataset}, now to "
    f"{_audience(p.d.get('audience'), p.names)}",
    "release.withdrawn": lambda p: f"{p.who} withdrew a release of {p.dataset}",
    "incident.accepted": lambda p: f"{p.who} accepted the suggested tags of incident "
    f"{p.e.get('object_id') or '?'}{_tag_count(p.d.get('coded'))}",
    "incident.corrected": lambda p: f"{p.who} corrected the tags of incident "
    f"{p.e.get('object_id') or '?'}{_tag_changes(p.d)}",
    "incident.rejected": lambda p: f"{p.who} rejected incident {p.e.get('object_id') or '?'} "
    "as irrelevant" + _because(p.d.get("reason")),
    "incident.merged": lambda p: f"{p.who} merged incident {p.e.get('object_id') or '?'} into "
    f"{p.d.get('into') or '?'}",
    "reports.purged": lambda p: f"{p.admin} deleted the texts of {_rows(p.d.get('texts'))} "
    f"crowd reports reviewed more than {p.d.get('retention_days', '?')} days ago",
    "source.added": lambda p: f"{p.admin} added {_source(p.d)}",
    "source.changed": lambda p: f"{p.admin} changed {_source({'name': p.d.get('name')})}"
    f"{_source_changes(p.d.get('changed'))}",
    "source.removed": lambda p: f"{p.admin} removed {_source(p.d)}",
    "request.refused": _refused,
}


def sentence(entry: Mapping[str, Any], names: Names) -> str:
    """One audit entry (its JSON, as the API and the exports give it) in words."""
    parts = _Parts(entry, entry.get("details") or {}, names)
    action = str(entry.get("action"))
    write = SENTENCES.get(action)
    text = write(parts) if write is not None else (
        f"{parts.who}: {action}" + (f" on {entry['dataset']}" if entry.get("dataset") else ""))
    return text[:1].upper() + text[1:] + "."


def _value(value: Any, names: Names) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        if value.startswith("org_"):
            return f"{names.org(value)} ({value})"
        if value.startswith("usr_"):
            return f"{names.who(value)} ({value})"
        if "/" in value:
            try:
                Fraction(value)
            except (ValueError, ZeroDivisionError):
                return value
            return f"{amount(value)} (exact {value})"
        return value
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_value(v, names) for v in value) or "none"
    return str(value)


def detail_lines(entry: Mapping[str, Any], names: Names, indent: str = "") -> list[str]:
    """The entry's details as ``key: value`` lines (nested fields indented; ids and exact
    amounts in brackets)."""
    lines: list[str] = []

    def walk(fields: Mapping[str, Any], pad: str) -> None:
        for key, value in fields.items():
            label = f"{pad}{str(key).replace('_', ' ')}"
            if isinstance(value, Mapping) and {"amount", "measure"} <= set(value):
                lines.append(f"{label}: {_cost(value)} (exact {value['amount']})")
            elif isinstance(value, Mapping):
                lines.append(f"{label}:")
                walk(value, pad + "  ")
            elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
                lines.append(f"{label}:")
                for i, item in enumerate(value, 1):
                    if isinstance(item, Mapping):
                        lines.append(f"{pad}  {i}.")
                        walk(item, pad + "    ")
                    else:
                        lines.append(f"{pad}  {i}. {_value(item, names)}")
            else:
                lines.append(f"{label}: {_value(value, names)}")

    walk(entry.get("details") or {}, indent)
    return lines
