"""Identity: the member organisations, their systems and people, and how each signs in.

::

    hub.identity.service      members, OAuth2 clients, EdDSA-signed JWT access and ID tokens
    hub.identity.signingkeys  the hub's Ed25519 signing keys (JWKS, rotation)
    hub.identity.people       people of member organisations: roles, passwords, external ids
    hub.identity.directory    the names behind ids, as each caller may read them
    hub.identity.signin       the hub's OpenID provider: public clients, codes, refresh tokens
    hub.identity.oidc         an external OpenID provider: discovery, JWKS rotation, checks

Who is asking, once resolved, is a :class:`hub.actors.Actor`; the HTTP side of sign-in
(authlib's servers) is in ``hub.api``.

May import: hub.errors, hub.settings, hub.actors, hub.storage, hub.governance
"""
