"""What the clients share: the HTTP session, a person's sign-in, the command-line basics.

::

    connectors.common.session  HubSession: OAuth2 client credentials or a person's tokens,
                               retries, the hub's problem documents as exceptions
    connectors.common.login    ``tahub login``/``logout``: PKCE sign-in, stored tokens
    connectors.common.cli      console, user-error wrapper, --hub and credential options

May import: hub.errors, hub.identity.signingkeys (checks a signed-in person's ID token)
"""
