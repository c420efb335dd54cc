"""The checks of one item of a received batch, as plain functions.

``node.federation.Receiver`` runs them on the database thread, and
``node.check_worker`` in a worker process for a hub's large pushes; both must
give the same outcome, so they share this one statement of the rules. Each
raises ``ValidationError`` (the item is malformed or not the sender's to send)
or ``IntegrityError`` (its key or signature does not hold).
"""
from __future__ import annotations

from node.clock import MAX_AHEAD_MS, too_far_ahead
from node.errors import IntegrityError, ValidationError
from schemas.events import Event

# A queue position: what the outbox ids and the peers' checkpoints hold on PostgreSQL (INTEGER, 4 bytes);
# SQLite's hold more, but no node hands out a position past it.
MAX_POSITION = 2**31 - 1


def positioned(item) -> bool:
    """Is ``item`` a batch item with an event and a queue position the databases can hold?"""
    return isinstance(item, dict) and "event" in item and type(item.get("pos")) is int and (
        0 <= item["pos"] <= MAX_POSITION)


def item_id(item) -> str:
    """The id an item's event claims, for a log line or a rejection ("?" if it has none)."""
    event = item.get("event") if isinstance(item, dict) else None
    return str(event.get("id", "?")) if isinstance(event, dict) else "?"


def shaped(item, sender: str, role: str, hub_id: str, now_ms: int) -> tuple[int, Event]:
    """(pos, event) of an item whose shape, authority and clock pass: the checks that need neither the
    directory nor the database."""
    if not positioned(item):
        raise ValidationError(f"item must be an object with 'pos' (an integer from 0 to {MAX_POSITION}) "
                              "and 'event'")
    event = Event.from_wire(item["event"])
    if event.type == "created" and event.payload.get("hub") not in (None, hub_id):
        raise ValidationError(f"event {event.id}: the ticket names {event.payload['hub']} as its hub, not {hub_id}")
    if role == "hub" and event.author != sender:
        raise ValidationError(f"{sender} may only send its own events, not {event.author}'s")
    if role != "hub" and sender != hub_id:
        raise ValidationError(f"only the hub may forward events, not {sender}")
    if too_far_ahead(event.hlc, now_ms):
        raise ValidationError(f"event {event.id}: its clock {event.hlc} is more than {MAX_AHEAD_MS // 60000} "
                              "minutes ahead of this node's")
    return item["pos"], event


def routes_within(event: Event, hub_id: str, hosts: dict[str, str]) -> None:
    """Only the hub routes anywhere: a district routes to an institution it hosts (``hosts``: institution
    -> its node)."""
    if event.type == "routed" and event.author != hub_id and (
            event.payload["node"] != event.author or hosts.get(event.payload["institution"]) != event.author):
        raise ValidationError(f"event {event.id}: {event.author} routes to {event.payload['institution']} at "
                              f"{event.payload['node']}, not an institution it hosts (only the hub routes "
                              "elsewhere)")


def signed_by(event: Event, entry, known: dict[str, str]) -> None:
    """``event`` is its author's, signed with ``entry`` ((node id, public key) of a valid signing key, or
    None). ``known``: events stored here, id -> canonical JSON; one stored byte for byte was verified on
    its way in, with the same key, and is not verified again."""
    if entry is None:
        raise IntegrityError(f"event {event.id}: unknown or revoked signing key {event.key}")
    if entry[0] != event.author:
        raise IntegrityError(f"event {event.id}: key {event.key} does not belong to author {event.author}")
    try:
        if event.id not in known or known[event.id] != event.canonical_wire():
            event.verify(entry[1])
    except ValueError as exc:   # (RFC 8785 cannot encode it: a number past 2**53, say)
        raise ValidationError(f"event {event.id}: has no canonical form: {exc}") from exc
