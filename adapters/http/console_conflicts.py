"""Console pages for conflicts: the list, both sides next to each other, and
the resolution form (pick side A or B, or write a merged state; a reason is
required). The conflict service (node.conflicts.ConflictService) does the
work; until a node has one, the pages say the feature is not available yet.
"""
from __future__ import annotations

import logging

from aiohttp import web

from adapters.http.console_base import flash, page_error, redirect, render, t, unavailable
from adapters.http.console_pages import conflict_service
from adapters.http.problems import read_form
from node.errors import NotFound, SimpulError
from node.lifecycle import STATUS_VALUES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ACTOR = "admin console"
MERGED_FIELDS = ("status", "institution", "title", "body")


@routes.get("/conflicts")
async def conflicts(request: web.Request) -> web.Response:
    svc = conflict_service(request)
    if svc is None:
        return unavailable(request, t(request, "nav_conflicts"))
    wanted = request.query.get("status", "open")
    status = wanted if wanted in ("open", "resolved") else None
    node = request.config_dict["node"]
    items = await node.db(svc.list, status)
    return render(request, "conflicts.html", {"items": items, "status": wanted if status else "all"})


def field_rows(conflict: dict) -> list[dict]:
    """One row per state field, both sides' values, and whether they differ."""
    sides = conflict.get("sides") or []
    names: list[str] = []
    for side in sides:
        for k in (side.get("state") or {}):
            if k not in names:
                names.append(k)
    differs = set(conflict.get("differs") or ())
    return [{"name": n, "cells": [_show((s.get("state") or {}).get(n)) for s in sides], "differs": n in differs}
            for n in names]


def _show(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value) or "—"
    return str(value)


async def _conflict_page(request: web.Request, conflict_id: str, error: str = "", status: int = 200,
                         form: dict | None = None) -> web.Response:
    svc = conflict_service(request)
    if svc is None:
        return unavailable(request, t(request, "nav_conflicts"))
    node = request.config_dict["node"]
    try:
        conflict = await node.db(svc.get, conflict_id)
    except NotFound:
        return page_error(request, 404, t(request, "conflict_not_found", id=conflict_id))
    insts = sorted((await node.db(node.institutions)).values(), key=lambda i: (i["node_id"], i["name"]))
    winner = conflict.get("provisional_winner")
    base = next((s.get("state") or {} for s in conflict.get("sides") or [] if s.get("label") == winner), {})
    return render(request, "conflict.html", {
        "c": conflict, "rows": field_rows(conflict), "institutions": insts, "error": error,
        "statuses": list(STATUS_VALUES), "form": form or {}, "merged": base,
        "inst_names": {i["id"]: i["name"] for i in insts}}, status=status)


@routes.get("/conflicts/{conflict_id}")
async def conflict(request: web.Request) -> web.Response:
    return await _conflict_page(request, request.match_info["conflict_id"])


@routes.post("/conflicts/{conflict_id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    conflict_id = request.match_info["conflict_id"]
    svc = conflict_service(request)
    if svc is None:
        return unavailable(request, t(request, "nav_conflicts"))
    form = await read_form(request)
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    reason = values.get("reason", "").strip()
    choice = values.get("choice", "")
    if not reason:
        return await _conflict_page(request, conflict_id, t(request, "reason_required"), 422, values)
    if choice not in ("A", "B", "merged"):
        return await _conflict_page(request, conflict_id, t(request, "choose_side"), 422, values)
    winner, state = (choice, None) if choice != "merged" else (None, _merged(values))
    node = request.config_dict["node"]
    try:
        await node.db(lambda: svc.resolve(conflict_id, winner=winner, state=state, reason=reason, actor=ACTOR))
    except SimpulError as exc:
        log.info("console: resolving conflict %s failed: %s", conflict_id, exc)
        return await _conflict_page(request, conflict_id, str(exc), exc.status, values)
    sync = request.config_dict.get("sync")
    if sync is not None:
        sync.wake()
    log.info("console: conflict %s resolved (%s)", conflict_id, choice)
    flash(request, "ok", t(request, "conflict_resolved"))
    return redirect(f"/admin/conflicts/{conflict_id}")


def _merged(values: dict) -> dict:
    state = {}
    for name in MERGED_FIELDS:
        value = values.get(f"m_{name}", "").strip()
        if name == "institution":
            state[name] = value or None
        elif value:
            state[name] = value
    return state
