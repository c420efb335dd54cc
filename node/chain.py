"""A district's own chain, confirmed with the hub: what a district restored from an older copy lost.

A district restored from an older copy of its database has lost the events it signed after the copy was
taken; the hub holds them. Left alone, it signed their sequence numbers again: the hub refused those as
equivocations, so the complaints they carried never reached it, and the reporters' tracking numbers were
given out twice.

So before its first push after it starts, a district asks the hub where the hub's copy of its chain
stands (``POST /federation/v1/chain``). It sends (seq, id) checkpoints of its own chain, its newest event
and then exponentially older ones; the hub answers with its newest event of that chain, the newest
checkpoint it holds as sent, and its cursor of the district's queue. In the usual case the hub's newest
event is one the district holds, and that is all: one request per start. Filing does not wait for the
answer (a district files while its hub is away); what would send the district's events on does. Pushes
wait, anti-entropy waits (the hub's copy of our own events would be refused here as equivocations), and
the hub's pulls are answered with nothing for a pull interval (they would take the events of a forked
chain to the hub, which refuses them); after that a district that the hub reaches but that cannot reach
the hub serves them, as before.

Otherwise the hub holds events of the district's chain that the district does not. The district fetches the
hub's copy after the last checkpoint both hold, page by page, checks every signature (its own key's) and
that the copy follows from its own chain without a gap (else none of it is taken), and applies it in one
transaction:

- it stores the events it lacks with their tickets' projections, and moves its chain head and its tracking
  number counters past them. If the hub's cursor is past every queue position this database ever handed
  out (it is older than what the hub received), what the district has queued moves past that cursor;
- if it signed events meanwhile (filed after the restore, before the hub could be reached), its chain forked
  at the first seq where the two copies differ. Those events never left this node, so they are taken out
  and signed again on top of the hub's copy: the same tickets and content, each on its ticket's current
  heads, in their order. A complaint whose tracking number the hub's copy had given out already gets the
  next free one; that is logged, audited on the ticket and shown by ``simpul status`` and the dashboard,
  since the reporter's receipt shows the old one. An action no longer allowed on its ticket's recovered
  state is dropped, and audited on the ticket.

The hub answers only a district's own chain, to the district itself: nothing it did not sign. Events of
other authors that the copy lacks (the hub's routings, say) come back by anti-entropy, as after any loss.
An answer that cannot be used is a ``PeerError``: the push loop logs it and pushes unconfirmed, as before
this check.
"""
from __future__ import annotations

import logging
import time

import orjson

from adapters.transport import Peer
from node.checks import MAX_POSITION
from node.errors import PeerError, SimpulError, ValidationError
from schemas.events import Event, within_bytes

log = logging.getLogger(__name__)
PAGE = 1000          # events per page of the hub's copy
CHECKPOINTS = 64     # (seq, id) pairs a district sends at most


def checkpoint_seqs(head: int) -> list[int]:
    """``head``, then seqs exponentially further back: head - 1, head - 2, head - 4, ... down to 1."""
    seqs, step = [], 1
    if head > 0:
        seqs.append(head)
    while head - step >= 1 and len(seqs) < CHECKPOINTS:
        seqs.append(head - step)
        step *= 2
    return seqs


def _request(data: object) -> tuple[list[tuple[int, str]], int, int]:
    if not isinstance(data, dict):
        raise ValidationError("body must be {'have': [[seq, id], ...], 'after': int, 'limit': int}")
    have, after, limit = data.get("have", []), data.get("after", 0), data.get("limit", 0)
    if not isinstance(have, list) or len(have) > CHECKPOINTS or not all(
            isinstance(h, list) and len(h) == 2 and type(h[0]) is int and h[0] > 0 and isinstance(h[1], str)
            for h in have):
        raise ValidationError(f"'have' must list at most {CHECKPOINTS} [seq, event id] pairs")
    if type(after) is not int or not 0 <= after < 2**62 or type(limit) is not int or not 0 <= limit <= PAGE:
        raise ValidationError(f"'after' must be a seq and 'limit' an integer from 0 to {PAGE}")
    return [(s, i) for s, i in have], after, limit


def answer(node, sender: str, data: object) -> bytes:
    """The hub's answer about ``sender``'s own chain: its newest event held here, the newest of the sender's
    checkpoints held here as sent (0: none), and up to ``limit`` of its events after ``after``, as stored."""
    if node.role != "hub":
        raise ValidationError("only a hub keeps a copy of its districts' chains")
    have, after, limit = _request(data)
    with node.storage.read() as tx:
        cursor = tx.peer(sender)["cursor"]
        head = tx.author_head(sender)
        held = tx.author_seq_ids(sender, [s for s, _ in have]) if have else {}
        rows = tx.events_by_author(sender, after, limit) if limit else []
    common = max((s for s, i in have if held.get(s) == i), default=0)
    events = within_bytes([(seq, Event.unparsed(i, raw)) for seq, i, raw in rows])   # (sent as stored)
    more = len(events) < len(rows) or (limit > 0 and len(rows) == limit)
    return (f'{{"head":{orjson.dumps(list(head) if head else None).decode()},"common":{common},"cursor":{cursor},'
            f'"events":[{",".join(e.canonical_wire() for _, e in events)}],'
            f'"more":{"true" if more else "false"}}}').encode()


class ChainRecovery:
    """The district's side: ``confirm`` once per process start, before its first push."""

    def __init__(self, node, transport, receiver, now=time.time):
        self.node = node
        self.transport = transport
        self.receiver = receiver
        self.now = now
        self.confirmed = False
        self.started = now()

    def serves_pulls(self) -> bool:
        """Whether to answer the hub's pulls: once the chain is confirmed, or once a pull interval has passed
        without it. Restored from an older copy, what a district queued on the older chain would fork the
        hub's copy: refused there, it was dead-lettered. But a district the hub reaches and that cannot
        reach the hub has only the hub's pulls, and must not wait for ever."""
        return self.confirmed or self.now() - self.started >= self.node.settings.sync.pull_interval_s

    async def confirm(self, peer: Peer) -> dict | None:
        """Check our chain against the hub's copy and take back what we lack; None if there was nothing
        to take, else what was done. Raises ``PeerError`` if the hub cannot be asked (pushes wait)."""
        ask = getattr(self.transport, "chain", None)
        if ask is None:   # (a transport without it: nothing to compare with)
            self.confirmed = True
            return None
        have = await self.node.db(self._checkpoints)
        first = _answer(peer, await ask(peer, {"have": have, "after": 0, "limit": 0}))
        head, common, cursor = _head(peer, first), first.get("common"), first.get("cursor", 0)
        if type(common) is not int or common < 0 or type(cursor) is not int or not 0 <= cursor <= MAX_POSITION:
            raise PeerError(f"{peer.node_id}'s chain answer has no 'common' seq or 'cursor'", retryable=False)
        await self.node.db(self._queue_above, peer.node_id, cursor)
        if head is None or await self.node.db(self._holds, head):
            self.confirmed = True
            return None
        raws, after = [], common
        while True:
            page = _answer(peer, await ask(peer, {"after": after, "limit": PAGE}))
            events = page.get("events")
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                raise PeerError(f"{peer.node_id}'s chain answer: 'events' must be a list of events", retryable=False)
            raws += events
            if not events or page.get("more") is not True:
                break
            seq = events[-1].get("seq")
            if type(seq) is not int or seq <= after:
                raise PeerError(f"{peer.node_id}'s chain answer does not move forward", retryable=False)
            after = seq
        done = await self.node.db(self._apply, peer.node_id, raws)
        self.confirmed = True
        return done

    def _checkpoints(self) -> list[list]:
        with self.node.storage.read() as tx:
            seq, _ = tx.chain_head(self.node.node_id)
            ids = tx.author_seq_ids(self.node.node_id, checkpoint_seqs(seq))
        return [[s, ids[s]] for s in checkpoint_seqs(seq) if s in ids]

    def _queue_above(self, hub: str, cursor: int) -> None:
        """Our queue for the hub past ``cursor``, the last of our queue positions it holds. A copy restored
        from before the hub's last pushes hands out those positions again, and the hub's answers would
        acknowledge the new entries at them unsent."""
        with self.node.storage.read() as tx:
            if cursor <= tx.outbox_sequence():   # (the usual case: the hub saw no position we did not hand out)
                return
        with self.node.storage.transaction() as tx:
            moved = tx.queue_above(hub, cursor)
        if moved:
            log.warning("%d event(s) queued for %s moved past its cursor of our queue (%d): this database is "
                        "older than what the hub received from us", moved, hub, cursor)

    def _holds(self, head: tuple[int, str]) -> bool:
        with self.node.storage.read() as tx:
            return tx.author_seq_ids(self.node.node_id, [head[0]]).get(head[0]) == head[1]

    def _checked(self, hub: str, raws: list[dict]) -> list[Event]:
        """The hub's copy, every event ours and verified with our key; else nothing of it is applied."""
        me = self.node.node_id
        good, bad = self.receiver.check_items(hub, [{"pos": 0, "event": e} for e in raws])
        bad += [(e.id, f"authored by {e.author}, not {me}") for _, e in good if e.author != me]
        if bad:
            raise PeerError(f"{hub}'s copy of our chain holds {len(bad)} event(s) refused here, so none of it is "
                            f"taken: {bad[0][0]}: {bad[0][1]}", retryable=False)
        return sorted((e for _, e in good), key=lambda e: e.seq)

    def _apply(self, hub: str, raws: list[dict]) -> dict:
        me = self.node.node_id
        theirs = self._checked(hub, raws)
        if not theirs:
            return {"recovered": 0, "resigned": 0, "renumbered": [], "dropped": []}
        with self.node.storage.transaction() as tx:
            head = tx.chain_head(me)[0]
            mine = tx.events_by_author(me, theirs[0].seq - 1, 2**31)
            local = {seq: i for seq, i, _ in mine}
            fork = next((e.seq for e in theirs if e.seq in local and local[e.seq] != e.id), None)
            forked = [Event.from_stored(raw) for seq, _, raw in mine if fork is not None and seq >= fork]
            if forked:
                tx.forget_events([e.id for e in forked])
                below = tx.author_seq_ids(me, [fork - 1]) if fork > 1 else {}
                tx.set_chain_head(me, fork - 1, below.get(fork - 1, ""))
            take = [e for e in theirs if e.seq not in local or (fork is not None and e.seq >= fork)]
            kept = fork - 1 if fork is not None else head   # (the last of ours that stays)
            gap = next((kept + 1 + i for i, e in enumerate(take) if e.seq != kept + 1 + i), None)
            if gap is not None:   # (an event of ours the hub lacks: the rest cannot follow from ours)
                raise PeerError(f"{hub}'s copy of our chain lacks seq {gap}, so none of it is taken", retryable=False)
            rejected: list[tuple[str, str]] = []
            take = self.receiver.chain_checked(tx, hub, take, rejected)
            if rejected:
                raise PeerError(f"{hub}'s copy of our chain does not follow from ours: {rejected[0][1]}",
                                retryable=False)
            fresh, _ = self.node.log.ingest(tx, hub, take)
            tx.forget_refusals(hub, [e.id for e in take])   # (refused here while our chain had forked)
            self._count_numbers(tx, take + forked)   # (a renumbered complaint gets a number after all of them)
            renumbered, dropped = self._sign_again(tx, forked, {_tracking(e) for e in take} - {None})
            tx.meta_set("chain_recovery", orjson.dumps({
                "at": self.now(), "recovered": len(fresh), "resigned": len(forked) - len(dropped),
                "renumbered": renumbered, "dropped": dropped}).decode())
        log.warning("this node's chain was behind the hub's copy of it (restored from an older copy?): took back "
                    "%d event(s) from %s, signed %d of ours again on top of them%s", len(fresh), hub,
                    len(forked) - len(dropped), "".join(
                        f"; tracking number {old} is now {new}" for _, old, new in renumbered))
        return {"recovered": len(fresh), "resigned": len(forked) - len(dropped), "renumbered": renumbered,
                "dropped": dropped}

    @property
    def _prefix(self) -> str:
        return f"{self.node.node_id.upper()}-"

    def _split(self, tracking: str) -> tuple[str, int] | None:
        """(stamp, number) of one of our tracking numbers (``NODE-yymm-00042``); None for another's."""
        stamp, _, number = tracking[len(self._prefix):].rpartition("-")
        return (stamp, int(number)) if tracking.startswith(self._prefix) and stamp and number.isdigit() else None

    def _count_numbers(self, tx, events: list[Event]) -> None:
        """Our tracking number counters past every number the recovered complaints were given."""
        highest: dict[str, int] = {}
        for stamp, number in filter(None, (self._split(t) for t in filter(None, map(_tracking, events)))):
            highest[stamp] = max(highest.get(stamp, 0), number)
        for stamp, number in highest.items():
            key = f"tracking:{stamp}"
            if int(tx.meta_get(key, "0")) < number:
                tx.meta_set(key, str(number))

    def _sign_again(self, tx, forked: list[Event], taken: set[str]) -> tuple[list, list]:
        """Sign ``forked`` again on top of the chain, in order; return (ticket, old, new) of the tracking
        numbers given anew, and (event id, reason) of the actions refused on their ticket's state now."""
        renumbered, dropped = [], []
        for e in forked:
            payload = dict(e.payload)
            if e.type == "created" and payload.get("tracking_id") in taken:
                old = payload["tracking_id"]
                stamp = (self._split(old) or (time.strftime("%y%m", time.gmtime(self.now())),))[0]
                payload["tracking_id"] = f"{self._prefix}{stamp}-{tx.next_counter(f'tracking:{stamp}'):05d}"
                renumbered.append((e.ticket, old, payload["tracking_id"]))
                tx.audit(e.ticket, "system", "renumbered",
                         f"tracking number {old} was given out before this node was restored; now "
                         f"{payload['tracking_id']}")
            try:
                self.node.log.append(tx, e.ticket, e.type, payload)
            except SimpulError as exc:
                dropped.append((e.id, str(exc)))
                tx.audit(e.ticket, "system", "dropped", f"{e.type} signed after this node was restored, not signed "
                                                        f"again on the recovered ticket: {exc}")
                log.warning("event %s (%s on ticket %s) not signed again after the chain recovery: %s", e.id,
                            e.type, e.ticket, exc)
                self.node.log.refresh(tx, e.ticket)   # (its projection still showed the event)
        return renumbered, dropped


def _answer(peer: Peer, data: object) -> dict:
    if not isinstance(data, dict):
        raise PeerError(f"{peer.node_id}'s chain answer is not a JSON object", retryable=False)
    return data


def _head(peer: Peer, data: dict) -> tuple[int, str] | None:
    head = data.get("head")
    if head is None:
        return None
    if not (isinstance(head, list) and len(head) == 2 and type(head[0]) is int and isinstance(head[1], str)):
        raise PeerError(f"{peer.node_id}'s chain answer: 'head' must be [seq, event id] or null", retryable=False)
    return head[0], head[1]


def _tracking(e: Event) -> str | None:
    value = e.payload.get("tracking_id") if e.type == "created" else None
    return value if isinstance(value, str) else None
