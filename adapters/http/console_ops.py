"""Console operations: the hub's disposition queue and the dead letters.

Assigning a ticket appends a signed ``routed`` event through the same
ComplaintService.act the JSON API uses, then wakes the sync loops so the
ticket leaves for its new holder at once. Replaying dead letters queues them
again (SyncEngine.replay) and wakes the loops.
"""
from __future__ import annotations

import logging

from aiohttp import web

from adapters.http.console_base import flash, redirect, render, t, whole_number
from adapters.http.problems import read_form
from node.errors import SimpulError
from schemas.complaints import ActionIn

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ACTOR = "admin console"


# ------------------------------------------------------------------ disposition
@routes.get("/disposition")
async def disposition(request: web.Request) -> web.Response:
    node = request.config_dict["node"]
    if node.role != "hub":
        return render(request, "disposition.html", {"hub_only": True, "items": [], "total": 0, "institutions": []})
    items, total = await node.db(node.complaints.list, {"awaiting_disposition": True}, 500, 0)
    insts = sorted((await node.db(node.institutions)).values(), key=lambda i: (i["node_id"], i["name"]))
    return render(request, "disposition.html", {"hub_only": False, "items": items, "total": total,
                                                "institutions": insts})


@routes.post("/disposition/{ticket_id}")
async def assign(request: web.Request) -> web.Response:
    node = request.config_dict["node"]
    if node.role != "hub":
        flash(request, "error", t(request, "hub_only"))
        return redirect("/admin/disposition")
    form = await read_form(request)
    ticket_id = request.match_info["ticket_id"]
    institution = str(form.get("institution", ""))
    reason = str(form.get("reason", "")).strip() or t(request, "assigned_by_admin")
    try:
        action = ActionIn(action="route", institution=institution or None, reason=reason[:2000], actor=ACTOR)
        state = await node.db(node.complaints.act, ticket_id, action, await node.db(node.institutions))
    except (SimpulError, ValueError) as exc:
        log.info("console: assigning %s to %r failed: %s", ticket_id, institution, exc)
        flash(request, "error", t(request, "assign_failed", error=_short(exc)))
        return redirect("/admin/disposition")
    request.config_dict["sync"].wake()
    log.info("console: ticket %s assigned to %s", state.tracking_id, institution)
    flash(request, "ok", t(request, "assigned", tracking=state.tracking_id, institution=institution))
    return redirect("/admin/disposition")


def _short(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic
        return "; ".join(e.get("msg", "") for e in errors())
    return str(exc)


# ------------------------------------------------------------------ dead letters
DEAD_LETTERS_SHOWN = 200  # the oldest ones; "replay all" still takes every one


def _dead_letters(node) -> dict:
    with node.storage.read() as tx:
        rows = tx.dead_letters(limit=DEAD_LETTERS_SHOWN)
        total = tx.dead_letter_count()
        tickets = {e.id: e.ticket for e in tx.get_events([r["event_id"] for r in rows])}
    return {"items": [{**r, "ticket": tickets.get(r["event_id"])} for r in rows], "total": total}


@routes.get("/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    node = request.config_dict["node"]
    return render(request, "dead_letters.html", await node.db(_dead_letters, node))


@routes.post("/dead-letters/replay")
async def replay(request: web.Request) -> web.Response:
    form = await read_form(request)
    if form.get("all") == "1":
        ids = None
    else:
        raw = form.getall("id", [])
        ids = [i for i in (whole_number(r, 2**63 - 1) for r in raw) if i is not None]
        if not ids:
            flash(request, "error", t(request, "replay_none_chosen"))
            return redirect("/admin/dead-letters")
    node, sync = request.config_dict["node"], request.config_dict["sync"]
    try:
        count = await node.db(sync.replay, ids)
    except SimpulError as exc:   # (a letter another admin replayed meanwhile: nothing is replayed)
        flash(request, "error", str(exc))
        return redirect("/admin/dead-letters")
    sync.wake()
    log.info("console: %d dead letter(s) replayed", count)
    flash(request, "ok", t(request, "replayed", n=count))
    return redirect("/admin/dead-letters")
