"""What the clients share: the HTTP session, a person's sign-in, the command-line basics.

::

    connectors.common.session  HubSession: OAuth2 client credentials or a person's tokens,
                               retries, the hub's problem documents as exceptions
    connectors.common.login    ``tahub login``/``logout``: PKCE sign-in, the hub and the
                               tokens kept together per profile
    connectors.common.discovery  is this address a tahub hub? (else what answered, and why
                               it is none)
    connectors.common.cli      console, user-error wrapper, --hub and credential options
    connectors.common.names    organisation and person names for ids (GET /v1/directory)
    connectors.common.amounts  privacy amounts as decimals (exact fractions stay in the API)
    connectors.common.auditsentences  audit entries as sentences, their fields as lines

May import: hub.errors, hub.identity.signingkeys (checks a signed-in person's ID token)
"""
