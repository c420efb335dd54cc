"""Ticket state as a pure fold over the ticket's events.

Events are applied in one deterministic order: by hybrid logical clock, then
author, then id. Causality is respected because an event's clock is always
later than its parents'. Any node holding the same set of events computes the
same state, whatever the order in which they arrived. An event that the
lifecycle forbids at its place in that order is kept in the log but skipped,
and listed in ``ignored``; node.merge refines what concurrent events do.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from node.lifecycle import Status, decide
from schemas.events import Event, canonical


@dataclass(frozen=True)
class TicketState:
    ticket_id: str
    tracking_id: str
    origin: str
    report_type: str
    category: str
    topic: str | None
    region: str
    kecamatan: str | None
    title: str
    body: str
    incident_date: str | None
    anonim: bool
    rahasia: bool
    channel: str
    chosen_institution: str | None
    filed_at: str
    status: Status = Status.RECEIVED
    institution: str | None = None
    holder_node: str | None = None
    returned_by: tuple[str, ...] = ()
    followups: tuple[dict, ...] = ()
    replies: tuple[dict, ...] = ()
    sealed_identity: dict | None = None
    last_hlc: str = ""
    event_count: int = 0
    ignored: tuple[tuple[str, str], ...] = ()
    conflicts: tuple[dict, ...] = field(default=())

    def public_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["ignored"] = [list(x) for x in self.ignored]
        return data

    def state_hash(self) -> str:
        return hashlib.sha256(canonical(self.public_dict())).hexdigest()


def order_key(event: Event) -> tuple[str, str, str]:
    return (event.hlc, event.author, event.id)


def _created(event: Event) -> TicketState:
    p = event.payload
    return TicketState(
        ticket_id=event.ticket, tracking_id=p["tracking_id"], origin=event.author, report_type=p["type"],
        category=p["category"], topic=p.get("topic"), region=p["region"], kecamatan=p.get("kecamatan"),
        title=p["title"], body=p["body"], incident_date=p.get("incident_date"), anonim=bool(p["anonim"]),
        rahasia=bool(p["rahasia"]), channel=p["channel"], chosen_institution=p.get("chosen_institution"),
        filed_at=p["filed_at"], last_hlc=event.hlc, event_count=1)


def _effect(state: TicketState, event: Event) -> dict[str, Any]:
    """Field changes an allowed event makes, beside the status."""
    p, t = event.payload, event.type
    entry = {"event": event.id, "author": event.author, "hlc": event.hlc}
    if t == "routed":
        return {"institution": p["institution"], "holder_node": p["node"], "sealed_identity": None}
    if t == "returned":
        return {"returned_by": state.returned_by + (state.institution or "",), "institution": None,
                "holder_node": None, "sealed_identity": None}
    if t == "followed_up":
        return {"followups": state.followups + ({**entry, "text": p.get("text", "")},)}
    if t == "reporter_replied":
        return {"replies": state.replies + ({**entry, "text": p.get("text", "")},)}
    if t == "edited":
        return {k: p[k] for k in ("title", "body") if k in p}
    if t == "identity_sealed":
        if p.get("holder_node") == state.holder_node:
            return {"sealed_identity": dict(p)}
        return {}
    if t == "conflict_resolved":
        return {k: (Status(v) if k == "status" else v) for k, v in p.get("state", {}).items()
                if k in ("status", "institution", "holder_node", "title", "body")}
    return {}


def apply(state: TicketState | None, event: Event) -> TicketState | None:
    """Apply one event; return the new state (None only before 'created')."""
    if state is None:
        return _created(event) if event.type == "created" else None
    decision = decide(state.status, event.type)
    if not decision.allowed:
        return replace(state, ignored=state.ignored + ((event.id, decision.reason),),
                       event_count=state.event_count + 1, last_hlc=max(state.last_hlc, event.hlc))
    changes = _effect(state, event)
    status = changes.pop("status", decision.to)
    return replace(state, status=status, event_count=state.event_count + 1,
                   last_hlc=max(state.last_hlc, event.hlc), **changes)


def fold(events: Iterable[Event]) -> TicketState | None:
    state = None
    for event in sorted(events, key=order_key):
        state = apply(state, event)
    return state


def heads(events: Iterable[Event]) -> tuple[str, ...]:
    """The ticket's forward extremities: events no other event names as parent."""
    events = list(events)
    seen_as_parent = {p for e in events for p in e.parents}
    return tuple(sorted(e.id for e in events if e.id not in seen_as_parent))
