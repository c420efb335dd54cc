"""Who receives which event: the delivery policy, as pure functions.

A district sends the hub every event it authors. The hub sends each event on a
ticket to the ticket's origin and to its holder before and after the event
(so an old holder learns the ticket moved away, then hears no more), never
back to the event's author. When a ticket gets a new holder, the hub also
queues every earlier event of the ticket for it: the routed ticket arrives
whole.
"""
from __future__ import annotations

from collections.abc import Sequence

from node.ticket import TicketState
from schemas.events import Event


def district_fanout(node_id: str, hub_id: str):
    def fanout(tx, before: TicketState | None, after: TicketState, events: Sequence[Event]) -> dict[str, list[str]]:
        own = [e.id for e in events if e.author == node_id]
        return {hub_id: own} if own and hub_id else {}
    return fanout


def hub_recipients(before: TicketState | None, after: TicketState, hub_id: str) -> set[str]:
    nodes = {after.origin, after.holder_node, before.holder_node if before else None}
    return {n for n in nodes if n and n != hub_id}


def hub_fanout(hub_id: str):
    def fanout(tx, before: TicketState | None, after: TicketState, events: Sequence[Event]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for dest in hub_recipients(before, after, hub_id):
            out[dest] = [e.id for e in events if e.author != dest]
        new_holder = after.holder_node
        if new_holder and new_holder != hub_id and (before is None or before.holder_node != new_holder):
            history = [e.id for e in tx.ticket_events(after.ticket_id) if e.author != new_holder]
            already = tx.queued_for(new_holder, history)
            fresh = set(out.get(new_holder, []))
            out[new_holder] = [i for i in history if i not in already and i not in fresh] + out.get(new_holder, [])
        return out
    return fanout
