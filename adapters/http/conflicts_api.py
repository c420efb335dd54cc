"""Conflict endpoints: list, show (both sides), resolve."""
from __future__ import annotations

from aiohttp import web

from adapters.http.api import json_response
from adapters.http.auth import require
from adapters.http.problems import only_query, read_json
from node.errors import ValidationError

routes = web.RouteTableDef()


@routes.get("/api/v1/conflicts")
async def list_conflicts(request: web.Request) -> web.Response:
    require(request, "operator", "admin")
    only_query(request, "status")
    node = request.app["node"]
    items = await node.db(node.conflicts.list, request.query.get("status"))
    return json_response({"items": items})


@routes.get("/api/v1/conflicts/{id}")
async def show_conflict(request: web.Request) -> web.Response:
    require(request, "operator", "admin")
    node = request.app["node"]
    return json_response(await node.db(node.conflicts.get, request.match_info["id"]))


@routes.post("/api/v1/conflicts/{id}/resolve")
async def resolve_conflict(request: web.Request) -> web.Response:
    require(request, "admin")
    data = await read_json(request)
    if not isinstance(data, dict) or set(data) - {"winner", "state", "reason", "actor"}:
        raise ValidationError("body must be {'winner': 'A'|'B'} or {'state': {...}}, with 'reason'")
    node = request.app["node"]
    result = await node.db(lambda: node.conflicts.resolve(
        request.match_info["id"], winner=data.get("winner"), state=data.get("state"),
        reason=data.get("reason", ""), actor=data.get("actor", "admin")))
    request.app["sync"].wake()
    return json_response(result, status=201)
