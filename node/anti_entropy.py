"""Anti-entropy: compare per-ticket digests with the hub and repair the difference.

A district asks its hub, page by page, for the digest of every ticket it
should hold in full (it is the origin or the current holder): the SHA-256 of
the ticket's sorted event ids. Events still queued on either side (in flight,
not yet acknowledged) are left out of both digests so that ordinary delivery is
not mistaken for loss. Only tickets whose digests differ are compared event by
event: the hub sends the events the district lacks, and the district queues
again its own events that the hub lacks. Nothing else is resent. Repairs are
counted per peer and shown in sync status, with the time of the last pass on
both sides (at the hub: when the district listed its last page).

The hub sends a ticket's events only to a node that should hold it (the rule
of the list, checked again on the projections of the tickets a diff names): a
diff is not a way to read another district's tickets, rahasia ones included,
or a ticket that has moved away from a former holder. Any other ticket a diff
names gets no events, with a warning (an honest district asks only for what
it holds, but a ticket can move away between its list and its diff); the hub
still says which of the ids the district sent it lacks, which tells the
district nothing it did not already know.

What the district refuses of a repair (a signature that does not verify, a
malformed event) goes to its dead-letter list under the hub's name, as a
pulled event does: the hub never hears of it. While it is listed, later passes
skip it when the hub offers it again, instead of checking and logging it on
every pass; replaying the dead letter lets the next pass check it again. An
event signed with a key not valid here (unknown until the next directory
refresh, or revoked) is not refused: it waits for a later pass.

The pass runs as an APScheduler job on districts; the hub answers. It waits
while more than one batch is queued for the hub: during a long drain nearly
every ticket would look missing there, and the comparison (a page per thousand
tickets on both sides) would compete with the delivery it cannot help.
"""
from __future__ import annotations

import hashlib
import logging
import time

from adapters.transport import Peer
from node.errors import PeerError, ValidationError

log = logging.getLogger(__name__)
PAGE = 1000


def digest(event_ids) -> str:
    return hashlib.sha256(",".join(sorted(event_ids)).encode()).hexdigest()


class AntiEntropy:
    def __init__(self, node, transport, receiver, sync, now=time.time):
        self.node = node
        self.transport = transport
        self.receiver = receiver
        self.sync = sync
        self.now = now

    # -- the hub's side ------------------------------------------------------------
    async def answer(self, sender: str, request: dict) -> dict:
        if not isinstance(request, dict) or request.get("op") not in ("list", "diff"):
            raise ValidationError("digest request must have op 'list' or 'diff'")
        answer = await self.node.db(self._answer, sender, request)
        if request["op"] == "list" and answer["next"] is None:
            # The peer has compared its last page: its pass ran, whether or not it finds anything to repair.
            # (Recorded only with a repair, the hub's console showed "never" next to districts checked every pass.)
            await self.node.db(self._count, sender, 0)
        return answer

    def _answer(self, sender: str, request: dict) -> dict:
        with self.node.storage.read() as tx:
            if request["op"] == "list":
                after = str(request.get("after") or "")
                tickets = tx.tickets_for_node(sender, after, PAGE)
                ids = tx.event_ids_by_ticket(tickets)
                pending = tx.in_flight(sender, [i for t in tickets for i in ids[t]])
                return {"tickets": [[t, digest(set(ids[t]) - pending)] for t in tickets],
                        "next": tickets[-1] if len(tickets) == PAGE else None}
            theirs = request.get("tickets")
            if not isinstance(theirs, dict) or len(theirs) > PAGE or not all(
                    isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in theirs.values()):
                raise ValidationError(f"'tickets' must map at most {PAGE} ticket ids to event id lists")
            ours = tx.event_ids_by_ticket(list(theirs))
            held = tx.tickets_held_by(sender, [t for t in theirs if ours[t]])
            withheld = sorted(t for t in theirs if ours[t] and t not in held)
            pending = tx.in_flight(sender, [i for t in held for i in ours[t]])
            send, missing_here = [], []
            for ticket, their_ids in theirs.items():
                their_set = set(their_ids)
                if ticket in held:
                    send += sorted(set(ours[ticket]) - pending - their_set)
                missing_here += sorted(their_set - set(ours[ticket]))
            events = [e.to_wire() for e in tx.get_events(send)]
        if withheld:
            log.warning("anti-entropy: %s asked for %d ticket(s) it neither filed nor holds; none of their events "
                        "sent: %s", sender, len(withheld), ", ".join(withheld[:10]))
        if events:
            self._count(sender, len(events))
        return {"events": events, "missing_here": missing_here}

    def _count(self, peer: str, repairs: int) -> None:
        """A pass with ``peer`` ended (on either side) with ``repairs`` events repaired."""
        with self.node.storage.transaction() as tx:
            row = tx.peer(peer)
            tx.update_peer(peer, repairs=row["repairs"] + repairs, anti_entropy_at=self.now())

    # -- the district's side ---------------------------------------------------------
    async def run_all(self) -> int:
        if self.node.role == "hub":
            return 0
        total = 0
        for peer in await self.sync.peers():
            try:
                total += await self.run(peer)
            except PeerError as exc:
                log.info("anti-entropy with %s skipped: %s", peer.node_id, exc)
        return total

    async def run(self, peer: Peer) -> int:
        if self.sync.chain is not None and not self.sync.chain.confirmed:
            # (restored from an older copy, our chain may have forked from the hub's copy of it: the hub's
            # events of ours would be refused here as equivocations; node.chain takes them first)
            log.info("anti-entropy with %s deferred: our chain is not confirmed with it yet", peer.node_id)
            return 0
        queued = await self.node.db(self._queued, peer.node_id)
        if queued > self.node.settings.sync.batch_size:
            log.info("anti-entropy with %s deferred: more than %d events still queued for it", peer.node_id,
                     self.node.settings.sync.batch_size)
            return 0
        after, mismatched, seen = "", [], set()
        while True:
            page = await self.transport.digests(peer, {"op": "list", "after": after})
            listed = {t: d for t, d in page.get("tickets", [])}
            seen |= set(listed)
            mismatched += await self.node.db(self._compare, peer.node_id, listed)
            if not page.get("next"):
                break
            after = page["next"]
        mismatched += await self.node.db(self._unlisted_own, seen)
        repaired = 0
        for i in range(0, len(mismatched), PAGE):
            chunk = await self.node.db(self._local_ids, mismatched[i:i + PAGE])
            answer = await self.transport.digests(peer, {"op": "diff", "tickets": chunk})
            repaired += await self.node.db(self._repair, peer.node_id, answer)
        await self.node.db(self._count, peer.node_id, repaired)
        if repaired:
            log.warning("anti-entropy with %s repaired %d event(s)", peer.node_id, repaired)
            self.sync.wake(peer.node_id)
        return repaired

    def _compare(self, peer: str, listed: dict[str, str]) -> list[str]:
        with self.node.storage.read() as tx:
            ids = tx.event_ids_by_ticket(list(listed))
            pending = tx.in_flight(peer, [i for t in listed for i in ids[t]])
        return [t for t, d in listed.items() if digest(set(ids[t]) - pending) != d]

    def _unlisted_own(self, listed: set[str]) -> list[str]:
        """Our own tickets the hub did not list at all (it lost them)."""
        with self.node.storage.read() as tx:
            own, after = [], ""
            while True:
                page = tx.tickets_for_node(self.node.node_id, after, PAGE)
                own += [t for t in page if t not in listed]
                if len(page) < PAGE:
                    return own
                after = page[-1]

    def _queued(self, peer: str) -> int:
        with self.node.storage.read() as tx:
            return tx.outbox_depth(peer, tx.peer(peer)["acked"], cap=self.node.settings.sync.batch_size)

    def _local_ids(self, tickets: list[str]) -> dict[str, list[str]]:
        with self.node.storage.read() as tx:
            return tx.event_ids_by_ticket(tickets)

    def _repair(self, peer: str, answer: dict) -> int:
        events = answer.get("events", [])
        if not isinstance(events, list):
            raise PeerError(f"{peer}'s diff answer: 'events' must be a list", retryable=False)
        named = [e for e in events if isinstance(e, dict) and isinstance(e.get("id"), str)]
        if len(named) < len(events):   # nothing to track them by: not refused one by one, on every pass
            log.warning("anti-entropy with %s: %d offered event(s) without an id ignored", peer,
                        len(events) - len(named))
        with self.node.storage.read() as tx:   # refused here before: not checked again until replayed
            refused = tx.refused_ids(peer, [e["id"] for e in named])
        items = [{"pos": 0, "event": e} for e in named if e["id"] not in refused]
        waiting = self.receiver.unknown_keys(items)   # may pass after a directory refresh: not refused yet
        if waiting:
            log.info("anti-entropy with %s: the events signed with key(s) not valid here (%s) wait for a later "
                     "pass", peer, ", ".join(sorted(waiting)))
            items = [i for i in items if not (isinstance(i["event"].get("key"), str) and i["event"]["key"] in waiting)]
        got = self.receiver.receive(peer, -1, items, dead_letter=True).accepted if items else 0
        with self.node.storage.transaction() as tx:
            ours = [e.id for e in tx.get_events(answer.get("missing_here", [])) if e.author == self.node.node_id]
            queued = tx.in_flight(peer, ours)   # on their way already
            ours = [i for i in ours if i not in queued]
            tx.enqueue(peer, ours)
        return got + len(ours)
