"""Ticket state as a pure fold over the ticket's events.

Events are applied in one deterministic order: by hybrid logical clock, then
author, then id. Causality is respected because an event's clock is always
later than its parents'. Any node holding the same set of events computes the
same state, whatever the order in which they arrived. An event that the
lifecycle forbids at its place in that order, or whose author does not own it
(node.merge), is kept in the log but skipped and listed in ``ignored``.
Conflicts that no rule settles are found first (node.merge.find_conflicts);
the losing side of each (provisional, or chosen by a resolution) is left out
of the state and the conflicts are listed in ``conflicts``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from node import merge
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
    hub: str | None = None
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
        """The state as JSON-ready data. Nested values are this (frozen) state's own: read them, never mutate."""
        own = self.__dict__
        data = {name: own[name] for name in _FIELDS}
        data["status"] = self.status.value
        data["ignored"] = [list(x) for x in self.ignored]
        return data

    def state_hash(self) -> str:
        return hashlib.sha256(canonical(self.public_dict())).hexdigest()


_FIELDS = tuple(f.name for f in fields(TicketState))
_FIELD_SET = frozenset(_FIELDS)


def replace(state: TicketState, **changes: Any) -> TicketState:
    """``dataclasses.replace`` for TicketState, without re-running ``__init__``: a fold makes one new state
    per event, and the generic version was a fifth of a receive's time."""
    unknown = changes.keys() - _FIELD_SET
    if unknown:
        raise TypeError(f"TicketState has no field(s) {sorted(unknown)}")
    new = object.__new__(TicketState)
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new
order_key = merge.order_key
_DEFAULTS = {f.name: f.default for f in fields(TicketState) if f.default is not MISSING}
_REQUIRED = frozenset(f.name for f in fields(TicketState) if f.default is MISSING and f.default_factory is MISSING)


def _fresh(values: dict[str, Any]) -> TicketState:
    """``TicketState(**values)`` without the frozen dataclass's ``__init__`` (as ``replace``)."""
    missing = _REQUIRED - values.keys()
    if missing or not _FIELD_SET >= values.keys():
        raise TypeError(f"TicketState: missing {sorted(missing)}, unknown {sorted(values.keys() - _FIELD_SET)}")
    new = object.__new__(TicketState)
    new.__dict__.update(_DEFAULTS)
    new.__dict__.update(values)
    return new


# The hub of a ticket whose ``created`` does not name one: filed by a release before ``created`` carried
# ``hub``. Such a ticket's events are signed and cannot gain the field, and without it the fold took every
# routing of the hub for a stranger's: the ticket froze, held by nobody, after an upgrade. A federation has
# one hub, so a node sets this to its own hub once (``set_legacy_hub``, by ``node.core.Node``).
_legacy_hub: str | None = None


def set_legacy_hub(hub_id: str | None) -> None:
    global _legacy_hub
    if hub_id != _legacy_hub:
        _legacy_hub = hub_id
        _FOLDED.clear()


def _hub_of(created: Event) -> str | None:
    return created.payload.get("hub") or _legacy_hub


def _created(event: Event) -> TicketState:
    p = event.payload
    return _fresh(dict(
        ticket_id=event.ticket, tracking_id=p["tracking_id"], origin=event.author, report_type=p["type"],
        category=p["category"], topic=p.get("topic"), region=p["region"], kecamatan=p.get("kecamatan"),
        title=p["title"], body=p["body"], incident_date=p.get("incident_date"), anonim=bool(p["anonim"]),
        rahasia=bool(p["rahasia"]), channel=p["channel"], chosen_institution=p.get("chosen_institution"),
        filed_at=p["filed_at"], hub=_hub_of(event), last_hlc=event.hlc, event_count=1))


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
    if t == "verified":   # (the verifying admin may raise a privacy flag the reporter did not; never lower one)
        return {k: True for k in ("anonim", "rahasia") if p.get(k) is True}
    if t == "identity_sealed":
        if p.get("holder_node") == state.holder_node and p.get("institution") == state.institution:
            return {"sealed_identity": dict(p)}
        return {}
    if t == "conflict_resolved":
        return {k: (Status(v) if k == "status" else v) for k, v in p.get("state", {}).items()
                if k in ("status", "institution", "holder_node", "title", "body")}
    return {}


def check(state: TicketState | None, event: Event) -> str | None:
    """None if ``event`` may apply to ``state`` now, else why not (lifecycle or ownership)."""
    decision = decide(state.status if state else None, event.type)
    if not decision.allowed:
        return decision.reason
    if state is None:
        return None
    return merge.authorised(event, hub=state.hub, origin=state.origin, holder=state.holder_node)


def apply(state: TicketState | None, event: Event) -> TicketState | None:
    """Apply one event; return the new state (None only before 'created')."""
    if state is None:
        return _created(event) if event.type == "created" else None
    reason = check(state, event)
    if reason is not None:
        return _ignored(state, event, reason)
    changes = _effect(state, event)
    status = changes.pop("status", decide(state.status, event.type).to)   # (allowed; remembered since check)
    return replace(state, status=status, event_count=state.event_count + 1,
                   last_hlc=max(state.last_hlc, event.hlc), **changes)


def _ignored(state: TicketState, event: Event, reason: str) -> TicketState:
    """``event`` kept in the log and counted, but not applied, and why (a replica shows it as ignored)."""
    return replace(state, ignored=state.ignored + ((event.id, reason),), event_count=state.event_count + 1,
                   last_hlc=max(state.last_hlc, event.hlc))


UNSETTLING = "it settles no conflict on this ticket"


_FOLDED: dict[frozenset[str], TicketState | None] = {}
_FOLDED_MAX = 2048
_UNKNOWN = object()


def fold(events: Iterable[Event]) -> TicketState | None:
    """The state after ``events``; remembered for recent sets, as a ticket is folded again and again
    while events are appended, received and reacted to (an event's id is the hash of its content, so
    the set of ids determines the result)."""
    unique = {e.id: e for e in events}
    if len(unique) == 1:  # a ticket just filed: nothing to order, merge or remember
        (only,) = unique.values()
        return _created(only) if only.type == "created" else None
    key = frozenset(unique)
    state = _FOLDED.get(key, _UNKNOWN)
    if state is not _UNKNOWN:
        return state
    state = _fold(unique.values())
    if len(_FOLDED) >= _FOLDED_MAX:
        _FOLDED.clear()
    _FOLDED[key] = state
    return state


def _linear(ordered: Sequence[Event]) -> bool:
    """Is each event's only parent the one before it? Then every event is an ancestor of the ones after
    it, and no two are concurrent: there is nothing for find_conflicts to find, nor for a resolution to
    settle. That is a ticket's usual history, and how the hub first receives it (whole, in one batch)."""
    return all(len(e.parents) == 1 and e.parents[0] == p.id for p, e in zip(ordered, ordered[1:]))


def _fold(events: Iterable[Event]) -> TicketState | None:
    ordered = sorted(events, key=order_key)
    if _linear(ordered):   # (nothing concurrent, so no conflict: a resolution here settles nothing)
        state = None
        for event in ordered:
            if event.type == "conflict_resolved" and state is not None:
                state = _ignored(state, event, UNSETTLING)
            else:
                state = apply(state, event)
        return state
    return _fold_concurrent(ordered)


def _unsettling(event: Event, specs: Sequence[merge.ConflictSpec], settled: dict[str, Event]) -> str:
    """Why a resolution on a ticket with conflicts settles none of them (an admin reads it as the reason)."""
    named = event.payload.get("conflict")
    spec = next((spec for spec in specs if named and named in (spec.id, spec.legacy_id)), None)
    if spec is None:
        return UNSETTLING
    named = spec.id
    if named in settled:
        return f"another resolution settles conflict {named} ({settled[named].author}'s, the last of those allowed)"
    return f"its author {event.author} may not settle conflict {named} (only the hub, the origin or the holder)"


def _fold_concurrent(ordered: Sequence[Event]) -> TicketState | None:
    created = next((e for e in ordered if e.type == "created"), None)
    if created is None:
        return None
    hub = _hub_of(created)
    state, passed_over = _fold_with(ordered, hub, created.author, frozenset())
    if passed_over:   # whose progress each event is, again without them (merge.find_conflicts)
        state, _ = _fold_with(ordered, hub, created.author, passed_over)
    return state


def _fold_with(ordered: Sequence[Event], hub: str | None, origin: str,
               passed_over: frozenset[str]) -> tuple[TicketState | None, frozenset[str]]:
    """The state, judging the holder's progress without the routings and returns in ``passed_over``; and
    the routings and returns this fold left out (the losing side of a conflict) or ignored."""
    specs = merge.find_conflicts(ordered, hub, passed_over)
    settled = merge.resolutions(ordered, hub=hub, origin=origin, specs=specs)
    left_out = merge.excluded_events(specs, settled)
    # A resolution applies its merged state only as the one that settles a conflict found here: before,
    # any resolution (naming no conflict, on a ticket without one) set whatever state it carried.
    settling = {settled[spec.id].id for spec in specs if spec.id in settled}
    state = None
    for event in ordered:
        if event.id in left_out:
            state = replace(state, event_count=state.event_count + 1) if state else state
            continue
        if event.type == "conflict_resolved" and event.id not in settling and state is not None:
            state = _ignored(state, event, _unsettling(event, specs, settled))
            continue
        state = apply(state, event)
    if specs and state is not None:
        state = replace(state, conflicts=tuple(_conflict_record(spec, settled.get(spec.id)) for spec in specs))
    ignored = {i for i, _ in state.ignored} if state is not None else set()
    return state, frozenset(e.id for e in ordered if e.type in ("routed", "returned")
                            and (e.id in left_out or e.id in ignored))


def _conflict_record(spec: merge.ConflictSpec, resolution: Event | None) -> dict:
    return {"id": spec.id, "kind": spec.kind, "sides": [list(spec.sides[0]), list(spec.sides[1])],
            "provisional_winner": spec.provisional_winner, "detected_hlc": spec.detected_hlc,
            "status": "resolved" if resolution is not None else "open",
            "resolution": None if resolution is None else {
                "event": resolution.id, "winner": resolution.payload.get("winner"),
                "reason": resolution.payload.get("reason", ""), "author": resolution.author}}


def heads(events: Iterable[Event]) -> tuple[str, ...]:
    """The ticket's forward extremities: events no other event names as parent."""
    events = list(events)
    seen_as_parent = {p for e in events for p in e.parents}
    return tuple(sorted(e.id for e in events if e.id not in seen_as_parent))
