"""The ``tahub`` command: a thin shell over the hub's services.

::

    hub.cli.main       the root command: serve, demo, contracts, policy, audit, budget;
                       mounts ``tahub query``, ``tahub policy`` and ``tahub login`` from
                       connectors
    hub.cli.context    what every command group shares: settings, services, the CLI actor
    hub.cli.admin      ``tahub admin``: migrate, sweep, settings-doc, members and clients
    hub.cli.people     ``tahub admin person``: people and their sign-in
    hub.cli.reference  generated reference docs (docs/settings.md)

May import: anything in hub and connectors (nothing imports it but the entry point).
"""
