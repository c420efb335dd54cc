"""Console pages: the dashboard, the ticket list and a ticket's timeline
(with the audited opening of the reporter's identity, when the node has it)."""
from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from datetime import date
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError as PydanticError

from adapters.http.console_base import flash, local_time, page_error, redirect, render, t, whole_number
from adapters.http.console_views import (check_signature, event_fields, event_institution, local_date,
                                         ticket_sla)
from adapters.http.problems import read_form
from node.errors import NotFound, SimpulError
from node.federation import KeyDirectory
from node.inputs import first_error
from node.lifecycle import STATUS_VALUES
from node.status import sync_status
from schemas.identity import IdentityOpenIn

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
PAGE_SIZE = 50
SLA_SCAN = 5000               # tickets per status looked at for the SLA counts
SLA_STATUSES = ("received", "verified", "dispositioned", "in_progress")


def conflict_service(request: web.Request):
    svc = request.config_dict.get("conflicts") or getattr(request.config_dict["node"], "conflicts", None)
    return svc if svc is not None and all(hasattr(svc, m) for m in ("list", "get", "resolve")) else None


# ------------------------------------------------------------------ dashboard
def _dashboard_data(node, today: date) -> dict:
    with node.storage.read() as tx:
        status = sync_status(tx, node.node_id)
        scanned = []
        for s in SLA_STATUSES:
            items, _ = tx.list_tickets(filters={"status": s}, limit=SLA_SCAN, offset=0)
            scanned.extend(items)
        awaiting = tx.list_tickets(filters={"awaiting_disposition": True}, limit=1, offset=0)[1]
        dead = tx.dead_letter_count()
    sla = Counter()
    for state in scanned:
        result = ticket_sla(state, today)
        if result.rule:
            sla[(result.rule, result.state)] += 1
    ae = [p["anti_entropy_at"] for p in status["peers"] if p["anti_entropy_at"]]
    return {"status": status, "sla": sla, "awaiting": awaiting, "dead_total": dead,
            "anti_entropy_at": max(ae) if ae else None}


@routes.get("/")
async def dashboard(request: web.Request) -> web.Response:
    node = request.config_dict["node"]
    data = await node.db(_dashboard_data, node, local_date(time.time()))
    svc = conflict_service(request)
    open_conflicts = len(await node.db(svc.list, "open")) if svc else None
    statuses = list(STATUS_VALUES)
    by_status = data["status"]["tickets_by_status"]
    return render(request, "dashboard.html", {
        **data, "statuses": statuses, "by_status": by_status, "ticket_total": sum(by_status.values()),
        "open_conflicts": open_conflicts})


# ------------------------------------------------------------------ ticket list
@routes.get("/tickets")
async def tickets(request: web.Request) -> web.Response:
    node = request.config_dict["node"]
    q = request.query
    filters: dict = {}
    if q.get("status") in STATUS_VALUES:
        filters["status"] = q["status"]
    if q.get("q", "").strip():
        filters["tracking_id"] = q["q"].strip().upper()
    if q.get("awaiting") == "1":
        filters["awaiting_disposition"] = True
    page = whole_number(q.get("page", ""), 10**6) or 1
    items, total = await node.db(node.complaints.list, filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    today = local_date(time.time())
    rows = [{"state": s, "sla": ticket_sla(s, today)} for s in items]
    keep = {k: v for k, v in q.items() if k in ("status", "q", "awaiting") and v}

    def page_link(n: int) -> str:
        return "?" + urlencode({**keep, "page": n})
    return render(request, "tickets.html", {
        "rows": rows, "total": total, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "page_link": page_link, "statuses": list(STATUS_VALUES), "query": q,
        "institutions": await node.db(node.institutions)})


# ------------------------------------------------------------------ timeline
def _timeline(node, keydir, ticket_id: str) -> dict:
    with node.storage.read() as tx:
        state = tx.get_ticket(ticket_id)
        if state is None:
            raise NotFound(ticket_id)
        events = tx.ticket_events(ticket_id)
        nodes = {n["node_id"]: n for n in tx.nodes()}
    institutions = node.institutions()
    ignored = dict(state.ignored)
    rows = []
    for e in events:
        inst = event_institution(e)
        rows.append({"event": e, "check": check_signature(keydir, node.storage, e),
                     "node_name": nodes.get(e.author, {}).get("name", ""),
                     "institution": institutions.get(inst, {}).get("name", inst) if inst else None,
                     "fields": event_fields(e, institutions), "ignored": ignored.get(e.id)})
    routed = [e.hlc for e in events if e.type == "routed"]
    return {"state": state, "rows": rows, "institutions": institutions,
            "routed_hlc": routed[-1] if routed else None}


def identity_opener(request: web.Request):
    """The identity service's ``open`` method, or None where this node has none."""
    svc = request.config_dict.get("identity")
    fn = getattr(svc, "open", None)
    return fn if callable(fn) else None


async def _ticket_page(request: web.Request, ticket_id: str, extra: dict | None = None,
                       status: int = 200) -> web.Response:
    node = request.config_dict["node"]
    keydir = request.config_dict.get("keydir") or KeyDirectory(node.storage, node.keys)
    try:
        data = await node.db(_timeline, node, keydir, ticket_id)
    except NotFound:
        return page_error(request, 404, t(request, "ticket_not_found", id=ticket_id))
    opener = identity_opener(request)
    params = inspect.signature(opener).parameters if opener else {}
    audit = []
    svc = request.config_dict.get("identity")
    if svc is not None and callable(getattr(svc, "audit_log", None)):
        audit = await node.db(svc.audit_log, ticket_id)
    data["sla"] = ticket_sla(data["state"], local_date(time.time()), data["routed_hlc"])
    return render(request, "ticket.html", {
        # (only an institution hosted on the hub has its key wrapped by a passphrase: a district never asks)
        **data, "identity_available": opener is not None,
        # (where decide_access would refuse whoever asks: no form to fill in for nothing)
        "identity_here": node.node_id in (data["state"].origin, data["state"].holder_node),
        "needs_passphrase": "passphrase" in params and node.role == "hub",
        "audit": audit, "opened": None, "identity_error": "", **(extra or {})}, status=status)


@routes.get("/tickets/{ticket_id}")
async def ticket(request: web.Request) -> web.Response:
    return await _ticket_page(request, request.match_info["ticket_id"])


@routes.post("/tickets/{ticket_id}/identity")
async def open_identity(request: web.Request) -> web.Response:
    """Open the reporter's identity through the identity service, which audits every attempt."""
    ticket_id = request.match_info["ticket_id"]
    opener = identity_opener(request)
    if opener is None:
        flash(request, "error", t(request, "identity_unavailable"))
        return redirect(f"/admin/tickets/{ticket_id}")
    form = await read_form(request)
    reason = str(form.get("reason", "")).strip()
    actor = str(form.get("actor", "")).strip()
    if len(reason) < 3 or not actor:
        return await _ticket_page(request, ticket_id, {"identity_error": t(request, "identity_needs")}, 422)
    try:   # the API's rules for the same request (lengths, control characters)
        asked = IdentityOpenIn.model_validate({"reason": reason, "actor": actor,
                                               "passphrase": str(form.get("passphrase", "")) or None})
    except PydanticError as exc:
        return await _ticket_page(request, ticket_id, {"identity_error": first_error(exc)}, 422)
    wanted = {"role": "console-admin", "actor_name": asked.actor, "actor": asked.actor, "reason": asked.reason,
              "passphrase": asked.passphrase}
    params = inspect.signature(opener).parameters
    kwargs = {k: v for k, v in wanted.items() if k in params}
    node = request.config_dict["node"]
    try:
        if inspect.iscoroutinefunction(opener):
            opened = await opener(ticket_id, **kwargs)
        else:
            opened = await node.db(lambda: opener(ticket_id, **kwargs))
    except SimpulError as exc:
        return await _ticket_page(request, ticket_id, {"identity_error": str(exc)}, exc.status)
    identity = getattr(opened, "identity", opened if isinstance(opened, dict) else {})
    log.info("console: identity of ticket %s opened by %s", ticket_id, actor)
    return await _ticket_page(request, ticket_id, {"opened": {
        "identity": identity, "source": getattr(opened, "source", ""), "at": local_time(time.time()),
        "actor": getattr(opened, "actor", actor)}})
