"""Bearer-token roles for the JSON API: ``intake`` (channels), ``operator``, ``admin``.

Tokens come from the node's configuration. A missing or unknown token is 401;
a known token whose role is not allowed is 403. Comparison is constant-time.
"""
from __future__ import annotations

import hmac

from aiohttp import web

from node.errors import Forbidden, Unauthorized

ROLES = ("intake", "operator", "admin")


def role_of(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    # aiohttp keeps a header's non-UTF-8 bytes as lone surrogates, which plain UTF-8 refuses to encode: such a
    # token is one that matches no role (401), not an error.
    given = token.encode("utf-8", "surrogatepass")
    tokens = request.app["tokens"]
    for role in ROLES:
        if hmac.compare_digest(given, getattr(tokens, role).encode()):
            return role
    raise Unauthorized("unknown bearer token")


def require(request: web.Request, *allowed: str) -> str:
    role = role_of(request)
    if role not in allowed:
        raise Forbidden(f"role '{role}' may not do this; needs one of: {', '.join(allowed)}")
    return role
