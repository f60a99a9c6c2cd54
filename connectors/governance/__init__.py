"""The governance officer's client: four-eyes policy changes, budgets, policy export.

::

    connectors.governance.client  GovernanceClient: propose, approve, reject, withdraw,
                                  restore, export and import policies, budgets
    connectors.governance.cli     ``tahub policy``, a thin shell over the client

May import: connectors.common, hub.errors
"""
