"""Client of the hub's governance API: four-eyes policy changes, budgets, the audit log.

A governance officer proposes a change to a dataset's sharing policy (its whole new YAML
text, or an earlier version to restore); another officer reviews the diff and approves it or
rejects it with a reason. Nothing takes effect before the quorum agrees::

    from connectors import GovernanceClient

    with GovernanceClient.from_env() as hub:       # a client with the governance role
        p = hub.propose(Path("policies/bank_alerts.yaml").read_text(), note="raise budget")
        print(p["diff"], p["still_needed"])
        hub.approve(p["id"])                       # refused: another officer must approve
        hub.export_policies(Path("policies"))      # the active versions, as files for git

    hub.proposals(status="pending")   versions by status (pending, scheduled, active, ...)
    hub.proposal(id)                  one version: its text, diff and approvals
    hub.restore(dataset, version)     propose an earlier version again
    hub.reject(id, reason=...)        another officer; hub.withdraw(id) the proposer
    hub.policies()                    every dataset's active version (with its text)
    hub.budgets()                     what every member has spent and has left
    hub.suggest_bounds(dataset, cost) DP quantiles of rows per unit, to size the bounds
    hub.audit(**filters)              audit entries; hub.audit_export(fmt, **filters)
    hub.directory()                   the names behind ids (organisations, people)

Every method returns the hub's JSON (docs/governance.md); a refusal is a
:class:`~hub.errors.HubRequestError` naming the rule (``four-eyes:own-proposal``...), the
field, or, for a policy file, each error with its line (``problem_body["errors"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from connectors.common.session import HubSession

__all__ = ["GovernanceClient"]


def _when(value: str | date | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, date | datetime) else value


class GovernanceClient(HubSession):
    """A governance officer's client of one hub (its client needs the ``governance`` role)."""

    # -- proposals --------------------------------------------------------------------------
    def propose(self, text: str, *, filename: str | None = None,
                effective_at: str | date | datetime | None = None, note: str | None = None,
                dry_run: bool = False) -> dict[str, Any]:
        """Propose ``text`` as its dataset's new policy; returns the proposal with its diff
        (``outcome``: proposed, existing, or valid for a dry run)."""
        body: dict[str, Any] = {"yaml": text, "filename": filename,
                                "effective_at": _when(effective_at), "note": note,
                                "dry_run": dry_run}
        return dict(self._request("POST", "/v1/governance/proposals", json=body).json())

    def restore(self, dataset: str, version: int, *,
                effective_at: str | date | datetime | None = None,
                note: str | None = None) -> dict[str, Any]:
        """Propose version ``version`` of ``dataset``'s policy again (the same review)."""
        body = {"dataset": dataset, "restore": version, "effective_at": _when(effective_at),
                "note": note}
        return dict(self._request("POST", "/v1/governance/proposals", json=body).json())

    def proposals(self, *, dataset: str | None = None, status: str | None = None
                  ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"dataset": dataset, "status": status}.items() if v}
        return list(self._request("GET", "/v1/governance/proposals", params=params).json())

    def proposal(self, proposal_id: str) -> dict[str, Any]:
        return dict(self._request("GET", self._path(proposal_id)).json())

    def version(self, dataset: str, number: int) -> dict[str, Any]:
        path = f"/v1/governance/policies/{quote(dataset, safe='')}/versions/{number}"
        return dict(self._request("GET", path).json())

    def approve(self, proposal_id: str, *, note: str | None = None) -> dict[str, Any]:
        return dict(self._request("POST", self._path(proposal_id, "approve"),
                                  json={"note": note}).json())

    def reject(self, proposal_id: str, *, reason: str) -> dict[str, Any]:
        return dict(self._request("POST", self._path(proposal_id, "reject"),
                                  json={"reason": reason}).json())

    def withdraw(self, proposal_id: str) -> dict[str, Any]:
        return dict(self._request("POST", self._path(proposal_id, "withdraw")).json())

    @staticmethod
    def _path(proposal_id: str, action: str | None = None) -> str:
        path = f"/v1/governance/proposals/{quote(proposal_id, safe='')}"
        return f"{path}/{action}" if action else path

    # -- the active policies, as files ----------------------------------------------------
    def policies(self) -> list[dict[str, Any]]:
        """Every dataset's active version (``yaml``: its exact text) and what is scheduled
        or pending."""
        return list(self._request("GET", "/v1/governance/policies").json())

    def export_policies(self, folder: Path) -> list[Path]:
        """Write every active policy to ``folder/<dataset>.yaml`` (exact text); returns the
        files written. Files of other datasets in the folder are left alone."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for policy in self.policies():
            if policy.get("yaml") is None:  # only scheduled so far
                continue
            path = folder / f"{policy['dataset']}.yaml"
            path.write_text(policy["yaml"], encoding="utf-8")
            written.append(path)
        return written

    # -- budgets and audit ------------------------------------------------------------------
    def budgets(self, dataset: str | None = None) -> list[dict[str, Any]]:
        params = {"dataset": dataset} if dataset else {}
        return list(self._request("GET", "/v1/governance/budgets", params=params).json())

    def suggest_bounds(self, dataset: str, cost: str, *,
                       quantiles: list[float] | None = None) -> dict[str, Any]:
        """DP quantiles of the rows each unit contributes (in total and per period), to size
        the policy's contribution bounds. Spends ``cost`` of your organisation's budget on
        ``dataset`` (sent once; the same question again is answered free)."""
        body: dict[str, Any] = {"dataset": dataset, "cost": cost}
        if quantiles:
            body["quantiles"] = quantiles
        return dict(self._request("POST", "/v1/governance/bounds", json=body,
                                  resend=False).json())

    def directory(self) -> dict[str, Any]:
        """The names behind ids (``GET /v1/directory``): every organisation; every person, as
        a governance officer reads them (connectors.common.names.Names.from_directory)."""
        return dict(self._request("GET", "/v1/directory").json())

    def audit(self, **filters: str | None) -> Iterator[dict[str, Any]]:
        """Audit entries matching ``filters`` (member, actor, action, since, until,
        dataset), oldest first, page after page."""
        params = {k: v for k, v in filters.items() if v}
        while True:
            page = self._request("GET", "/v1/audit", params=params).json()
            yield from page["entries"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def audit_export(self, fmt: str = "jsonl", **filters: str | None) -> str:
        """The filtered entries as JSONL or CSV text."""
        params = {k: v for k, v in {"format": fmt, **filters}.items() if v}
        return self._request("GET", "/v1/audit/export", params=params).text
