"""Appending to and applying the signed event log, inside a storage transaction.

``EventLog.append`` is the only way a node authors an event: it locks the
node's chain head, takes the ticket's current heads as parents, ticks the
hybrid clock, signs, writes the event, refreshes the ticket projection and
queues the event for its destinations, all in the caller's transaction.
``EventLog.ingest`` stores events received from a peer (already verified) the
same way, with an inbox row for each one stored fresh.

Who receives an event is a policy passed in (``Fanout``): a district sends
what it authors to the hub; the hub sends each event to the ticket's origin
and to its holders before and after the event.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.clock import HybridClock
from node.errors import Forbidden, IllegalTransition
from node.keys import KeyRing
from node.lifecycle import decide
from node.merge import authorised
from node.ticket import TicketState, fold, heads
from schemas.events import Event, make_event

log = logging.getLogger(__name__)

# (tx, state before, state after, the new events) -> {destination: [event ids]}
Fanout = Callable[[object, TicketState | None, TicketState, Sequence[Event]], dict[str, list[str]]]
# (tx, the state last projected (None: none), the state to project) -> extra projection columns
ProjectionHook = Callable[[object, TicketState | None, TicketState], dict]


@dataclass(frozen=True)
class Appended:
    event: Event
    state: TicketState


class EventLog:
    def __init__(self, node_id: str, keys: KeyRing, clock: HybridClock, fanout: Fanout,
                 projection_hook: ProjectionHook | None = None):
        self.node_id = node_id
        self.keys = keys
        self.clock = clock
        self.fanout = fanout
        self.projection_hook = projection_hook or (lambda tx, before, state: {})

    def append(self, tx, ticket_id: str, type: str, payload: dict, *, check: bool = True) -> Appended:
        events = tx.ticket_events(ticket_id)
        before = fold(events)
        if events:  # later than its parents, even if another process of this node received them
            self.clock.observe_all(e.hlc for e in events)
        seq, prev = tx.chain_head(self.node_id, lock=True)
        event = make_event(ticket=ticket_id, author=self.node_id, seq=seq + 1, prev=prev,
                           parents=heads(events), hlc=self.clock.tick(), type=type, payload=payload,
                           key_id=self.keys.signing_key_id, private_key=self.keys.signing_key)
        if check:
            decision = decide(before.status if before else None, type)
            if not decision.allowed:
                raise IllegalTransition(decision.reason)
            if before is not None:
                refusal = authorised(event, hub=before.hub, origin=before.origin, holder=before.holder_node)
                if refusal:
                    raise Forbidden(refusal)
        tx.insert_events([event], signed_here=True)
        tx.set_chain_head(self.node_id, event.seq, event.id)
        after = self._project(tx, events + [event], before)
        self._send(tx, before, after, [event])
        return Appended(event, after)

    def ingest(self, tx, origin: str, events: Sequence[Event]) -> tuple[list[Event], dict[str, TicketState]]:
        """Store verified events from ``origin``; return the new ones and the touched tickets' states."""
        # One query reads what is stored of the batch's tickets, before the batch joins it (the
        # transaction's cache then gains the new events without reading them back).
        tx.prefetch_ticket_events(e.ticket for e in events)
        fresh = tx.insert_events(events)
        tx.inbox_add(origin, [e.id for e in fresh])
        states: dict[str, TicketState] = {}
        by_ticket: dict[str, list[Event]] = {}
        self.clock.observe_all(e.hlc for e in fresh)
        for e in fresh:
            by_ticket.setdefault(e.ticket, []).append(e)
        own = [e for e in fresh if e.author == self.node_id]
        if own:   # our own events back from a peer (a restored copy catching up, node.chain)
            newest = max(own, key=lambda e: e.seq)
            if newest.seq > tx.chain_head(self.node_id, lock=True)[0]:
                tx.set_chain_head(self.node_id, newest.seq, newest.id)
        for ticket_id, new in by_ticket.items():
            all_events = tx.ticket_events(ticket_id)
            new_ids = {e.id for e in new}
            before = fold(e for e in all_events if e.id not in new_ids)
            after = self._project(tx, all_events, before)
            if after is None:
                continue  # events ahead of their 'created': kept, shown once it arrives
            states[ticket_id] = after
            self._send(tx, before, after, new, back_to=origin)
        return fresh, states

    def refresh(self, tx, ticket_id: str) -> TicketState | None:
        """Project ``ticket_id`` again from its stored events (after some were taken out of the log)."""
        return self._project(tx, tx.ticket_events(ticket_id), tx.get_ticket(ticket_id))

    def _project(self, tx, events: Sequence[Event], before: TicketState | None) -> TicketState | None:
        """Fold ``events`` and store the ticket's projection; ``before`` is the state projected last (the
        fold of the events stored before these), which the hook compares with."""
        state = fold(events)
        if state is not None:
            tx.put_ticket(state, **self.projection_hook(tx, before, state))
        return state

    def _send(self, tx, before, after, events, back_to: str | None = None) -> None:
        """Queue ``events`` for their destinations, never back to the peer they came from (``back_to``)."""
        came = {e.id for e in events} if back_to else set()
        for dest, ids in self.fanout(tx, before, after, events).items():
            if dest == back_to:
                ids = [i for i in ids if i not in came]
            if dest != self.node_id and ids:
                tx.enqueue(dest, ids)
