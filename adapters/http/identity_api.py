"""Confidentiality endpoints: opening a reporter's identity, its audit trail,
the reporter's messages at the origin, and the public listing.

- ``POST /api/v1/complaints/{id}/identity`` (operator only, body
  ``{"reason": ..., "actor": ..., "passphrase": ...}``): the identity, opened
  on the handling node (or read at the origin). Every attempt is audited.
  Anonymous report or not the holder: 403; not sealed yet: 409; tampered box
  or wrong passphrase: 422 (``sealing``), and the ticket itself is untouched.
- ``GET /api/v1/complaints/{id}/audit`` (admin): who opened what, when, why.
- ``GET /api/v1/complaints/{id}/messages`` (origin node; intake, operator,
  admin): follow-ups addressed to the reporter, for the origin to pass on;
  this is how an anonymous reporter is reached.
- ``GET /api/v1/public/complaints`` (no authentication): tickets anyone may
  see. ``rahasia`` reports are never listed and no identity is ever shown.

``routes`` holds them all; app.py adds it when this module is present.
"""
from __future__ import annotations

from aiohttp import web

from adapters.http.api import json_response
from adapters.http.auth import require
from adapters.http.problems import only_query, parse, query_int, read_json
from node.identity import public_view
from schemas.identity import IdentityOpenIn

routes = web.RouteTableDef()
PUBLIC_FILTERS = ("status", "category", "region", "institution")


def _service(request: web.Request):
    service = request.app.get("identity")
    if service is None:
        raise RuntimeError("IdentityService is not wired into this app")
    return service


@routes.post("/api/v1/complaints/{ticket_id}/identity")
async def open_identity(request: web.Request) -> web.Response:
    role = require(request, "operator")
    body = parse(IdentityOpenIn, await read_json(request))
    node, service = request.app["node"], _service(request)

    def run():
        return service.open(request.match_info["ticket_id"], role=role, actor_name=body.actor,
                            reason=body.reason, passphrase=body.passphrase)
    opened = await node.db(run)
    return json_response({"ticket_id": opened.ticket_id, "identity": opened.identity, "source": opened.source,
                          "sealed_to": opened.key_id, "opened_by": opened.actor, "audited": True})


@routes.get("/api/v1/complaints/{ticket_id}/audit")
async def audit(request: web.Request) -> web.Response:
    require(request, "admin")
    node, service = request.app["node"], _service(request)
    items = await node.db(service.audit_log, request.match_info["ticket_id"])
    return json_response({"ticket_id": request.match_info["ticket_id"], "items": items})


@routes.get("/api/v1/complaints/{ticket_id}/messages")
async def messages(request: web.Request) -> web.Response:
    require(request, "intake", "operator", "admin")
    node, service = request.app["node"], _service(request)
    return json_response(await node.db(service.messages, request.match_info["ticket_id"]))


@routes.get("/api/v1/public/complaints")
async def public_complaints(request: web.Request) -> web.Response:
    only_query(request, *PUBLIC_FILTERS, "limit", "offset")
    filters: dict = {k: request.query[k] for k in PUBLIC_FILTERS if k in request.query}
    filters["rahasia"] = False
    limit, offset = query_int(request, "limit", 50, 1, 200), query_int(request, "offset", 0, 0, 10**9)
    node = request.app["node"]
    items, total = await node.db(node.complaints.list, filters, limit, offset)
    # The filter is in the query; this second check is belt and braces for the one rule that must hold.
    return json_response({"items": [public_view(s) for s in items if not s.rahasia], "total": total,
                          "limit": limit, "offset": offset})
