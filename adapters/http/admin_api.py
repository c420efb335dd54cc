"""Admin and operator JSON endpoints: sync status, dead letters, node enrolment,
the hub's disposition queue."""
from __future__ import annotations

from aiohttp import web

from adapters.http.api import json_response, ticket_view
from adapters.http.auth import require
from adapters.http.problems import only_query, query_bool, query_int, read_json
from node import directory
from node.errors import NotFound, ValidationError
from node.status import sync_status

routes = web.RouteTableDef()


@routes.get("/api/v1/sync/status")
async def status(request: web.Request) -> web.Response:
    require(request, "operator", "admin")
    only_query(request)
    node = request.app["node"]
    return json_response(await node.db(node.in_read, sync_status, node.node_id))


@routes.get("/api/v1/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    require(request, "admin")
    only_query(request, "all", "after", "limit")
    node = request.app["node"]
    everything = query_bool(request, "all")
    after, limit = query_int(request, "after", 0, 0, 2**62), query_int(request, "limit", 500, 1, 5000)
    items = await node.db(node.in_read, lambda tx: tx.dead_letters(include_replayed=everything, after=after,
                                                                     limit=limit))
    # a whole backlog can be dead-lettered at once: the list comes a page at a time, ``next`` asks for the rest
    return json_response({"items": items, "next": items[-1]["id"] if len(items) == limit else None})


@routes.post("/api/v1/dead-letters/replay")
async def replay(request: web.Request) -> web.Response:
    require(request, "admin")
    data = await read_json(request) if request.can_read_body else {}
    # Replaying everything is the answer to an empty body only: a body that is not understood (a typo
    # in the key, a wrong shape) is refused rather than taken for "all".
    if not isinstance(data, dict) or set(data) - {"ids"}:
        raise ValidationError("body must be {'ids': [dead letter id, ...]}, or empty to replay all")
    ids = data.get("ids")
    if "ids" in data and not (isinstance(ids, list) and ids and all(type(i) is int and i > 0 for i in ids)):
        raise ValidationError("ids must be a non-empty list of dead letter ids (positive integers); "
                              "omit it to replay all")
    node = request.app["node"]
    count = await node.db(request.app["sync"].replay, ids)
    request.app["sync"].wake()
    return json_response({"replayed": count})


@routes.get("/api/v1/admin/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    require(request, "admin")
    only_query(request)
    node = request.app["node"]
    return json_response(await node.db(node.in_read, directory.snapshot))


@routes.post("/api/v1/admin/nodes")
async def enroll(request: web.Request) -> web.Response:
    require(request, "admin")
    node = request.app["node"]
    if node.role != "hub":
        raise NotFound("node enrolment happens at the hub")
    data = await read_json(request)

    def write():
        with node.storage.transaction() as tx:
            return directory.enroll(tx, data if isinstance(data, dict) else {})
    entry = await node.db(write)
    request.app["keydir"].forget()
    await request.app["sync"].refresh_peers()
    return json_response(entry, status=201)


@routes.post("/api/v1/admin/nodes/{node_id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    require(request, "admin")
    node = request.app["node"]

    def write():
        with node.storage.transaction() as tx:
            return directory.revoke(tx, request.match_info["node_id"], role=node.role, self_id=node.node_id)
    entry = await node.db(write)
    request.app["keydir"].forget()
    return json_response(entry)


@routes.get("/api/v1/disposition")
async def disposition_queue(request: web.Request) -> web.Response:
    require(request, "operator", "admin")
    only_query(request, "limit", "offset")   # (before, the first 500 and no way past them)
    limit, offset = query_int(request, "limit", 500, 1, 500), query_int(request, "offset", 0, 0, 10**9)
    node = request.app["node"]
    items, total = await node.db(node.complaints.list, {"awaiting_disposition": True}, limit, offset)
    return json_response({"items": [ticket_view(s) for s in items], "total": total, "limit": limit,
                          "offset": offset})
