"""The public JSON API under /api/v1: complaints, their events, health.

Handlers parse and check input, call a node service through the DbRunner and
render the result. They hold no domain logic.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from aiohttp import web
from sqlalchemy.engine import make_url

from adapters.http.auth import require
from adapters.http.problems import only_query, parse, query_bool, query_int, read_json
from node.errors import BadRequest, Forbidden
from node.ticket import TicketState
from schemas.complaints import ActionIn, ComplaintIn

routes = web.RouteTableDef()
MIN_FREE_BYTES = 8 * 1024 * 1024   # /readyz: a SQLite node with less free space is not ready
LIST_FILTERS = ("status", "institution", "origin", "category", "report_type", "region", "tracking_id",
                "awaiting_disposition")


def ticket_view(state: TicketState) -> dict:
    data = state.public_dict()
    data["ticket_id"] = state.ticket_id
    data["state_hash"] = state.state_hash()
    data["type"] = state.report_type  # the name it was filed under (ComplaintIn.type)
    data["identity"] = ("anonim" if state.anonim else "local" if state.holder_node == state.origin
                        else "sealed" if state.sealed_identity else "pending")
    data.pop("sealed_identity", None)
    return data


def json_response(data, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data),
                        content_type="application/json")


@routes.post("/api/v1/complaints")
async def file_complaint(request: web.Request) -> web.Response:
    require(request, "intake", "operator", "admin")
    if request.app["node"].role == "hub":
        raise Forbidden("complaints are filed at a district node: the hub routes and relays, and never holds "
                        "a reporter's identity in clear")
    complaint = parse(ComplaintIn, await read_json(request))
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200 and key.isascii() and key.isprintable()):
        raise BadRequest("Idempotency-Key must be 1 to 200 printable ASCII characters")
    filed = await request.app["intake"].file(complaint, key)
    request.app["sync"].wake()
    body = {"ticket_id": filed.state.ticket_id, "tracking_id": filed.state.tracking_id,
            "status": filed.state.status.value, "redacted": list(filed.redactions)}
    return json_response(body, status=201 if filed.created else 200)


@routes.get("/api/v1/complaints/{ticket_id}")
async def get_complaint(request: web.Request) -> web.Response:
    require(request, "intake", "operator", "admin")
    node = request.app["node"]
    state = await node.db(node.complaints.get, request.match_info["ticket_id"])
    return json_response(ticket_view(state))


@routes.get("/api/v1/complaints")
async def list_complaints(request: web.Request) -> web.Response:
    require(request, "operator", "admin")
    only_query(request, *LIST_FILTERS, "limit", "offset")
    filters: dict = {k: request.query[k] for k in LIST_FILTERS if k in request.query}
    if "awaiting_disposition" in filters:
        filters["awaiting_disposition"] = query_bool(request, "awaiting_disposition")
    limit, offset = query_int(request, "limit", 50, 1, 500), query_int(request, "offset", 0, 0, 10**9)
    node = request.app["node"]
    items, total = await node.db(node.complaints.list, filters, limit, offset)
    return json_response({"items": [ticket_view(s) for s in items], "total": total, "limit": limit,
                          "offset": offset})


@routes.post("/api/v1/complaints/{ticket_id}/events")
async def post_action(request: web.Request) -> web.Response:
    role = require(request, "operator", "admin")
    action = parse(ActionIn, await read_json(request))
    if action.action in ("route", "archive", "edit") and role != "admin" and request.app["node"].role == "hub":
        require(request, "admin")
    node = request.app["node"]
    institutions = await node.db(node.institutions)
    state = await node.db(node.complaints.act, request.match_info["ticket_id"], action, institutions)
    request.app["sync"].wake()
    return json_response(ticket_view(state), status=201)


@routes.get("/api/v1/complaints/{ticket_id}/events")
async def list_events(request: web.Request) -> web.Response:
    require(request, "intake", "operator", "admin")
    node = request.app["node"]
    raws = await node.db(node.complaints.events_raw, request.match_info["ticket_id"])
    body = '{"events":[' + ",".join(raws) + "]}"
    return web.Response(body=body.encode(), content_type="application/json")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "node_id": request.app["node"].node_id})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    node = request.app["node"]
    ok = await node.db(node.storage.ping)
    folder = Path(make_url(node.settings.db_url).database or ".").parent if node.storage.dialect == "sqlite" else None
    free = shutil.disk_usage(folder).free if folder is not None else None
    if ok and free is not None and free < MIN_FREE_BYTES:   # (a full disk refuses every write; reads go on)
        return json_response({"status": f"disk almost full: {free // 1024} KiB free in {folder}"}, status=503)
    return json_response({"status": "ready" if ok else "database unreachable"}, status=200 if ok else 503)


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    from schemas.openapi import document
    return json_response(document(request.app["node"].settings.url))
