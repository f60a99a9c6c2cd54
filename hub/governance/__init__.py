"""Governance: who may ask what at what cost, how that changes, and what everyone did.

::

    hub.governance.policies       sharing policies: pydantic models of policies/*.yaml (core)
    hub.governance.proposals      a policy change request, the quorum, its diff (core)
    hub.governance.policychanges  policy versions and their four-eyes review
    hub.governance.policystore    the active policies of every process, kept fresh
    hub.governance.audit          the append-only, hash-chained audit log
    hub.governance.auditread      reading it: filters, who may read what, JSONL/CSV export

May import: hub.errors, hub.yamlfile, hub.actors, hub.contracts, hub.privacy, hub.storage
"""
