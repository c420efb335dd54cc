"""What a node does when events arrive, by role. Runs inside the receive transaction.

Hub: a ticket that has no holder and is waiting (received, verified, or
returned as bukan wewenang) is routed by node.routing; if no rule decides, it
stays in the disposition queue for a hub admin. Routing never guesses.

District: a ticket routed here for an institution whose competences or region
do not cover it is returned at once as bukan wewenang, with the reason (when
``auto_return_out_of_competence`` is on; operators can always return by hand).
Only a routing made by a rule (the reporter's choice, or competence) is
checked, and only the newest (``by_rule``); a hub admin's manual disposition
is accepted as the admin's call.
The origin node re-seals the reporter's identity for each new holder
(node.identity).
"""
from __future__ import annotations

import logging

from node import routing
from node.lifecycle import UNROUTED, Status
from node.ticket import TicketState
from schemas.events import Event

log = logging.getLogger(__name__)


class Topology:
    """The directory as the routing policy sees it: every institution and region, and (at the hub,
    ``self_id``) the institutions whose node cannot take a ticket now: not enrolled, or revoked."""

    def __init__(self, tx, self_id: str | None = None):
        rows = tx.institutions()
        self.institutions = routing.institutions_from_rows(rows)
        self.by_id = {i.id: i for i in self.institutions}
        self.regions = routing.regions_from_rows(tx.regions())
        self.unavailable: frozenset[str] = frozenset()
        if self_id is not None:
            active = {n["node_id"] for n in tx.nodes() if n["enrolled_at"] and not n["revoked_at"]} | {self_id}
            self.unavailable = frozenset(i.id for i in self.institutions if i.node_id not in active)


class TopologyCache:
    """The topology, read again only when the directory's institutions or regions changed.

    Reading every institution and region (and parsing their competences) cost a hub about 10 ms per
    routing receive with the sample's few dozen, and grows with the directory: a national hub holds
    thousands. A transaction that writes either counts up a version, in whichever process it runs
    (``DirectoryRepo.topology_version``), so the one small read of that version, in the routing
    transaction itself, says whether the copy held here is the one that transaction sees."""

    def __init__(self, self_id: str | None = None):
        self.self_id = self_id
        self._held: tuple[int, Topology] | None = None

    def get(self, tx) -> Topology:
        version = tx.topology_version()
        if self._held is None or self._held[0] != version:
            self._held = (version, Topology(tx, self.self_id))
        return self._held[1]


def route_ticket(node, tx, state: TicketState, topo: Topology) -> tuple[TicketState, str] | None:
    """Route a waiting ticket by the rules; return its new state and the rule that decided, or None if it
    waits for a hub admin."""
    decision = routing.route(category=state.category, topic=state.topic, region=state.region,
                             chosen_institution=state.chosen_institution, excluded=set(state.returned_by),
                             institutions=topo.institutions, regions=topo.regions, unavailable=topo.unavailable)
    if decision.institution is None:
        log.info("ticket %s waits for manual disposition: %s", state.tracking_id, decision.reason)
        return None
    routed = node.log.append(tx, state.ticket_id, "routed", {"institution": decision.institution,
                                                             "node": decision.node, "reason": decision.reason,
                                                             "rule": decision.rule})
    log.info("ticket %s routed to %s (%s)", state.tracking_id, decision.institution, decision.reason)
    return routed.state, decision.rule


def return_if_not_competent(node, tx, state: TicketState, topo: Topology) -> TicketState | None:
    """As the holder of ``state``: return it as bukan wewenang if its institution's competences or region
    do not cover it (``routing.competent``); the new state, or None if it is kept."""
    inst = topo.by_id.get(state.institution or "")
    if inst is None or routing.competent(inst, state.category, state.topic, state.region, topo.regions):
        return None
    what = f"{state.category}/{state.topic or '-'} di wilayah {state.region}"
    returned = node.log.append(tx, state.ticket_id, "returned", {
        "institution": inst.id, "auto": True, "reason": f"bukan wewenang: {inst.name} tidak menangani {what}"})
    log.info("ticket %s returned as bukan wewenang by %s", state.tracking_id, inst.id)
    return returned.state


def route_waiting_ticket(node, tx, state: TicketState, topo: Topology) -> bool:
    """At the hub: route a ticket that waits (``route_ticket``); True if it was routed. A reporter's choice
    of an institution hosted on the hub itself is checked as a district checks one of its own (there is
    no other node to return it): before, a school complaint whose reporter chose the electricity company
    stayed with it."""
    routed = route_ticket(node, tx, state, topo)
    if (routed is not None and routed[1] == "chosen" and routed[0].holder_node == node.node_id
            and node.settings.auto_return_out_of_competence):
        returned = return_if_not_competent(node, tx, routed[0], topo)
        if returned is not None:
            return route_ticket(node, tx, returned, topo) is not None
    return routed is not None


def hub_react(node):
    """Route what waits, as it arrives."""
    topology = TopologyCache(node.node_id)

    def react(tx, states: dict[str, TicketState], fresh: list[Event]) -> None:
        topo = None
        for state in states.values():
            if state.institution is None and state.status in UNROUTED:
                topo = topo or topology.get(tx)
                route_waiting_ticket(node, tx, state, topo)
    return react


class WaitingRouter:
    """At the hub: route the tickets of the disposition queue again whenever the routing topology changed
    (a federation file loaded, a node enrolled or revoked, in this process or another), a page per write
    transaction. Before, a waiting ticket was routed only when an event of its own arrived: a rule added,
    or its institution's node enrolled, changed nothing until then. A ticket routed but not accepted yet,
    whose institution another node hosts now, is routed to that node; before, it stayed with the old one,
    which might never come back (the usual reason to move an office)."""
    PAGE = 200

    def __init__(self, node):
        self.node = node
        self.topology = TopologyCache(node.node_id)
        self.seen: int | None = None

    def run(self) -> int:
        """One pass, if the topology changed since the last one (every ticket, on the first); the number
        of tickets routed."""
        with self.node.storage.read() as tx:
            version = tx.topology_version()
        if version == self.seen:
            return 0
        routed = offset = 0
        while True:
            with self.node.storage.transaction() as tx:
                topo = self.topology.get(tx)
                page, _ = tx.list_tickets(filters={"awaiting_disposition": True}, limit=self.PAGE, offset=offset)
                now = sum(route_waiting_ticket(self.node, tx, state, topo) for state in page)   # (all waiting)
            routed += now
            offset += len(page) - now   # (the routed ones left the queue; the others stay ahead)
            if len(page) < self.PAGE:
                break
        routed += self._follow_moves()
        self.seen = version
        if routed:
            log.info("routed %d waiting ticket(s) after a change of the directory", routed)
        return routed

    def _follow_moves(self) -> int:
        moved, skip = 0, set()
        while True:
            with self.node.storage.transaction() as tx:
                topo = self.topology.get(tx)
                page = [s for s in tx.tickets_moved_away(self.PAGE + len(skip)) if s.ticket_id not in skip]
                for state in page:
                    inst = topo.by_id.get(state.institution or "")
                    if inst is None or inst.id in topo.unavailable:   # (its new node cannot take it yet)
                        skip.add(state.ticket_id)
                        continue
                    self.node.log.append(tx, state.ticket_id, "routed", {
                        "institution": inst.id, "node": inst.node_id, "rule": "directory",
                        "reason": f"instansi {inst.id} pindah ke node {inst.node_id}"})
                    log.info("ticket %s routed to %s at %s, where its institution moved", state.tracking_id,
                             inst.id, inst.node_id)
                    moved += 1
            if not page:
                return moved


def by_rule(fresh: list[Event]) -> dict[str, tuple[str, str]]:
    """Ticket -> (institution, node) of the newest routing in ``fresh``, for tickets where a rule made it
    (the reporter's choice, or competence). An admin's manual disposition (no rule) is a deliberate
    decision and is not second-guessed. Only the newest counts: a new holder receives the whole history at
    once, and before, the rule's first routing in it made the admin's later one look like a rule's."""
    newest: dict[str, Event] = {}
    for e in fresh:
        if e.type == "routed" and (e.ticket not in newest or e.hlc > newest[e.ticket].hlc):
            newest[e.ticket] = e
    return {t: (e.payload["institution"], e.payload["node"]) for t, e in newest.items() if e.payload.get("rule")}


def district_react(node, identity=None):
    topology = TopologyCache()

    def react(tx, states: dict[str, TicketState], fresh: list[Event]) -> None:
        routed_now = by_rule(fresh)
        topo = None
        filed_here = []
        for state in states.values():
            if (node.settings.auto_return_out_of_competence and routed_now.get(state.ticket_id) == (
                    state.institution, state.holder_node) and state.holder_node == node.node_id
                    and state.status == Status.DISPOSITIONED):
                topo = topo or topology.get(tx)
                if return_if_not_competent(node, tx, state, topo) is not None:
                    continue
            if identity is not None and state.origin == node.node_id:
                filed_here.append(state)
        if filed_here:
            identity.reseal_all(tx, filed_here)
    return react
