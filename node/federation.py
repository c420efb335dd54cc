"""Receiving federation batches: check everything, then apply once.

Before anything is stored, each event is parsed, checked for authority (a
district may only send its own events; only the hub forwards others'), and
verified: its id must be the hash of its content and its signature must
verify with the author's key from the node directory. An event that claims an
(author, seq) already taken by a different event is equivocation and refused.
Its clock may not be more than ``node.clock.MAX_AHEAD_MS`` ahead of ours, and a
ticket has one ``created`` event: another one for a ticket that has it (an
attempt to take the ticket over with a back-dated origin) is refused too.
What passes is ingested in one transaction together with its inbox rows, the
role's reactions (routing at the hub; competence checks and sealing at a
district) and the sender's checkpoint. Rejections are logged and returned to
the sender, which dead-letters them; they are never applied. A batch we
pulled has nobody to return them to: they are dead-lettered here instead
(``dead_letter``), in the same transaction.

The checks of an item are in ``node.checks``. They run on the thread that
stores the batch (the database thread), before its transaction begins, except
for a hub's large pushes, which ``start`` sends to a worker process as soon as
they are authenticated (``node.check_worker``): the database thread then takes
the events that passed, and adds the checks that need the directory. Ed25519
verification in libsodium releases the GIL, and a large batch used to be
verified in chunks on a thread pool instead, while the chunks before it were
stored. On this project's 2-core VM that cost more than it gave: the database
thread gives up the GIL at every SQLite call and every verification, and each
hand-over between two threads running Python costs both. Without the pool, the
hub spent 17-20% less CPU on a drain and drained 7% more events per second
(five alternating pairs of 20,000- and 40,000-event drains,
``scripts/PERFORMANCE.md``). An item byte-for-byte equal to an event already
stored (a push and a pull crossing, a retried batch) is not verified again on
the database thread: the stored copy was, with the same key; only its key is
checked again (it may have been revoked since).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import orjson

from node.check_worker import CheckContext, CheckWorker, check_body
from node.checks import item_id, positioned, routes_within, shaped, signed_by
from node.errors import IntegrityError, ValidationError
from node.keys import load_signing_public
from schemas.events import Event, within_bytes

log = logging.getLogger(__name__)
GAPS_KEPT = 64       # batches applied ahead of a missing one, remembered per sender
WORKER_FROM = 64     # items: a smaller pushed batch is checked on the database thread
WORKER_KEYS = 4      # signing keys a batch for the worker names at most (a district's own, rotations included)
KEY_CACHE_S = 5.0    # how long a directory key is trusted before it is read again (a revocation's delay)


@dataclass(frozen=True)
class Received:
    accepted: int
    duplicates: int
    rejected: tuple[tuple[str, str], ...]
    cursor: int
    queued_for: frozenset[str] = frozenset()   # the destinations this receive queued events for

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "cursor": self.cursor,
                "rejected": [{"id": i, "reason": r} for i, r in self.rejected]}


class KeyDirectory:
    """Public signing keys by key id: ours, and the directory's, cached for ``KEY_CACHE_S``.

    The cache is what makes a revocation take a few seconds: ``simpul nodes revoke`` (another process)
    or another process of a hub changes the directory in the database, and an entry read before it must
    not be trusted for long. Each key is read again after ``KEY_CACHE_S``, one row per key, which costs
    nothing next to the signatures it serves."""

    def __init__(self, storage, ring, clock: Callable[[], float] = time.monotonic):
        self.storage = storage
        self.ring = ring
        self.clock = clock
        self._cache: dict[str, tuple[float, tuple[str, object]]] = {}

    def resolve(self, key_id: str):
        entry = self.lookup(key_id)
        return entry[1] if entry else None

    def lookup(self, key_id: str) -> tuple[str, object] | None:
        """(node id, public key) for a valid signing key, else None."""
        if key_id in self.ring.signing:
            return self.ring.node_id, self.ring.signing[key_id].public_key()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        with self.storage.read() as tx:
            row = tx.get_key(key_id)
            node = tx.get_node(row["node_id"]) if row else None
        if row is None or row["kind"] != "signing" or node is None or node.get("revoked_at"):
            return None
        if row["valid_until"] is not None and row["valid_until"] < time.time():
            return None
        entry = (row["node_id"], load_signing_public(row["public"]))
        self._cache[key_id] = (self.clock() + KEY_CACHE_S, entry)
        return entry

    def forget(self) -> None:
        self._cache.clear()


def _hosts(tx) -> dict[str, str]:
    """Institution -> the node that hosts it (``node.checks.routes_within``)."""
    return {i["id"]: i["node_id"] for i in tx.institutions()}


def _refuse(sender: str, rejected: list[tuple[str, str]], event_id: str, reason: str) -> None:
    log.warning("rejected event %s from %s: %s", event_id, sender, reason)
    rejected.append((event_id, reason))


def _chain_problem(e: Event, taken: dict[int, str], after: dict[int, str], prev_of: dict[str, str],
                   refused: set[int]) -> str | None:
    """Why ``e`` breaks its author's chain here, or None: ``taken`` is the author's seq -> event id held (or
    taken earlier in the batch), ``after`` the held event after one of the batch's seqs, ``prev_of`` those
    events' ``prev``, and ``refused`` the author's seqs refused earlier in the batch."""
    author, before, next_id = e.author, taken.get(e.seq - 1), after.get(e.seq)
    if e.seq - 1 in refused and before is None:
        # Its predecessor was refused just now: storing it would leave a gap in the author's chain here,
        # which nothing fills (before, a restored district's next events were taken so).
        return f"chain broken: {author} seq {e.seq - 1}, which it follows, was refused"
    if e.seq in taken and taken[e.seq] != e.id:
        return f"equivocation: {author} seq {e.seq} is already {taken[e.seq]}"
    if (e.seq == 1 and e.prev is not None) or (before is not None and e.prev != before):
        return f"chain broken: {author} seq {e.seq} must follow {before or 'nothing'}, not {e.prev}"
    if next_id is not None and prev_of.get(next_id, e.id) != e.id:
        return f"chain broken: {author} seq {e.seq + 1} (held) follows {prev_of[next_id]}, not this event"
    return None


class Receiver:
    def __init__(self, node, keys: KeyDirectory, react: Callable[[object, dict, list[Event]], None],
                 now: Callable[[], float] = time.time):
        self.node = node
        self.keys = keys
        self.react = react
        self.now = now
        self.worker = CheckWorker()
        # sender -> {after: last position} of batches applied while an earlier one was still missing (two
        # pushes in flight may be answered out of order); the cursor moves over them once the gap is filled.
        # Kept in memory only: after a restart the cursor waits for the next pull instead.
        self._ahead: dict[str, dict[int, int]] = {}

    def _check(self, sender: str, item, known: dict[str, str], hosts: dict[str, str]) -> tuple[int, Event]:
        pos, event = shaped(item, sender, self.node.role, self.node.hub_id, int(self.now() * 1000))
        routes_within(event, self.node.hub_id, hosts)
        signed_by(event, self.keys.lookup(event.key), known)
        return pos, event

    def unknown_keys(self, items: Sequence) -> set[str]:
        """The signing key ids that ``items`` (wire batch items) name and that are not valid here: unknown
        (a node enrolled, or a key rotated, since our last directory refresh) or revoked. Malformed items
        are left to ``receive``, which refuses them."""
        keys = {i["event"].get("key") for i in items if isinstance(i, dict) and isinstance(i.get("event"), dict)}
        return {k for k in keys if isinstance(k, str) and self.keys.lookup(k) is None}

    def check_items(self, sender: str, items: Sequence) -> tuple[list[tuple[int, Event]], list[tuple[str, str]]]:
        """Every check of ``receive`` that needs no transaction: (pos, event) of the items that pass, and
        (id, reason) of those refused."""
        # Items already stored byte for byte need no signature check (the stored copy had one).
        ids = [i["event"]["id"] for i in items if isinstance(i, dict) and isinstance(i.get("event"), dict)
               and isinstance(i["event"].get("id"), str)]
        routes = any(isinstance(i, dict) and isinstance(i.get("event"), dict) and i["event"].get("type") == "routed"
                     for i in items)
        with self.node.storage.read() as tx:   # (institution -> its node, in the same read, if anything routes)
            known = tx.stored_raw(ids)
            hosts = _hosts(tx) if routes else {}
        good, rejected = [], []
        for item in items:
            try:
                good.append(self._check(sender, item, known, hosts))
            except (ValidationError, IntegrityError) as exc:
                _refuse(sender, rejected, item_id(item), str(exc))
        return good, rejected

    def start(self, sender: str, body: bytes, items: list) -> Future | None:
        """Start checking a large pushed batch (``body``, parsed as ``items``) in the worker process; the
        future to hand to ``receive``, or None (a small batch, or no worker: ``receive`` checks it). Called
        as soon as the push is authenticated, so that it is checked while the batch ahead is stored."""
        if len(items) < WORKER_FROM:
            return None
        named = {i["event"].get("key") for i in items if isinstance(i, dict) and isinstance(i.get("event"), dict)}
        if len(named) > WORKER_KEYS:   # (a key not cached is read from the database, here on the event loop)
            return None
        keys = {}
        for k in named:
            entry = self.keys.lookup(k) if isinstance(k, str) else None
            if entry is not None:
                keys[k] = (entry[0], entry[1].public_bytes_raw())
        ctx = CheckContext(sender, self.node.role, self.node.hub_id, int(self.now() * 1000), keys)
        return self.worker.submit(check_body, body, ctx)

    def _checked_by_worker(self, sender: str, items: list, started: Future) -> tuple[list, list] | None:
        """The outcome of ``start``'s checks of ``items``, with the routing check added (it needs the
        directory's institutions); None if the worker failed (the batch is then checked here)."""
        answers = self.worker.answer(started, f"a push from {sender}")
        if answers is None:
            return None
        if len(answers) != len(items):   # (not the batch it was given: never seen)
            log.warning("the check worker answered %d items of a push of %d from %s; checking it here",
                        len(answers), len(items), sender)
            return None
        good, rejected = [], []
        for item, (ok, a, b) in zip(items, answers):
            if ok:   # (the worker checked the same bytes that were parsed as ``item``: not parsed again)
                good.append((a, Event.checked(item["event"], b)))
            else:
                _refuse(sender, rejected, a, b)
        if any(e.type == "routed" for _, e in good):
            with self.node.storage.read() as tx:
                hosts = _hosts(tx)
            refused = set()
            for _, event in good:
                try:
                    routes_within(event, self.node.hub_id, hosts)
                except ValidationError as exc:
                    _refuse(sender, rejected, event.id, str(exc))
                    refused.add(event.id)
            good = [(pos, e) for pos, e in good if e.id not in refused]
        return good, rejected

    def receive(self, sender: str, after: int, items: Sequence, started: Future | None = None, *,
                dead_letter: bool = False) -> Received:
        """Check and apply one batch (``started``: its checks, if ``start`` began them).

        ``dead_letter``: the rejected items go to our own dead-letter list, under the sender's name, in the
        transaction that moves the sender's cursor past them. For a batch we pulled: no sender hears of its
        rejections, so without this they would vanish."""
        items = list(items)
        outcome = self._checked_by_worker(sender, items, started) if started is not None else None
        good, rejected = outcome or self.check_items(sender, items)
        with self.node.storage.transaction() as tx:
            events = self._one_created(tx, sender, self.chain_checked(tx, sender, [e for _, e in good], rejected),
                                       rejected)
            fresh, states = self.node.log.ingest(tx, sender, events)
            if states:
                self.react(tx, states, fresh)
            if dead_letter:   # (an id is the sender's claim: cut to the column's width, which a hash fits)
                tx.add_dead_letters(sender, [(i[:64], f"refused here: {r}") for i, r in rejected])
            last = max((i["pos"] for i in items if positioned(i)), default=None)
            ahead = last is not None and after > tx.peer(sender)["cursor"]
            if last is not None and not ahead:
                tx.advance_peer(sender, cursor=self._past_gaps(sender, last))
            tx.update_peer(sender, last_contact=self.now(), failures=0, next_attempt_at=0.0, last_error="")
            cursor = tx.peer(sender)["cursor"]
            queued_for = frozenset(tx.queued_dests)
        if ahead:  # only once stored: the cursor must never pass an event that is not
            gaps = self._ahead.setdefault(sender, {})
            gaps[after] = last
            for oldest in sorted(gaps)[:-GAPS_KEPT]:  # (those behind the cursor, which can never match, first)
                del gaps[oldest]
        return Received(accepted=len(fresh), duplicates=len(events) - len(fresh), rejected=tuple(rejected),
                        cursor=cursor, queued_for=queued_for)

    def _past_gaps(self, sender: str, cursor: int) -> int:
        """``cursor`` moved over the batches from ``sender`` already applied right after it."""
        gaps = self._ahead.get(sender, {})
        while cursor in gaps:
            cursor = max(cursor, gaps.pop(cursor))
        return cursor

    @staticmethod
    def chain_checked(tx, sender: str, good: list[Event], rejected: list[tuple[str, str]]) -> list[Event]:
        """``good`` without events that claim an (author, seq) already taken by another event, stored or
        earlier in the batch, and without those whose ``prev`` is not the author's event before them where
        that one is held here (before, a broken chain was stored and sent on, and 'simpul verify' then
        failed on every node that held it), and without those that follow an event refused here."""
        events = []
        for author in {e.author for e in good}:
            mine = sorted((e for e in good if e.author == author), key=lambda e: e.seq)
            seqs = {e.seq for e in mine}
            taken = tx.author_seq_ids(author, sorted(seqs | {n - 1 for n in seqs} - {0} | {n + 1 for n in seqs}))
            # The stored event right after one of ours (arrived first: two pushes answered out of order) must
            # name it as its prev, as ours must name the one before.
            after = {n - 1: taken[n] for n in taken if n - 1 in seqs and n not in seqs}
            prev_of = {i: orjson.loads(raw)["prev"] for i, raw in tx.stored_raw(list(after.values())).items()
                       } if after else {}
            refused: set[int] = set()   # (seqs of this author refused in this batch)
            for e in mine:
                why = _chain_problem(e, taken, after, prev_of, refused)
                if why is None:
                    taken[e.seq] = e.id
                    events.append(e)
                else:
                    log.warning("rejected event %s from %s: %s", e.id, sender, why)
                    rejected.append((e.id, why))
                    refused.add(e.seq)
        return events

    @staticmethod
    def _one_created(tx, sender: str, events: list[Event], rejected: list[tuple[str, str]]) -> list[Event]:
        """``events`` without a ``created`` for a ticket that already has another one, stored or earlier in
        the batch: the first one the hub stores is the ticket's (its author is the origin, whatever clock a
        later one claims)."""
        created = [e for e in events if e.type == "created"]
        if not created:
            return events
        tx.prefetch_ticket_events(e.ticket for e in events)  # what ingest reads next anyway: no extra query
        first = {}
        for e in created:
            stored = next((x.id for x in tx.ticket_events(e.ticket) if x.type == "created"), None)
            if stored is not None:
                first[e.ticket] = stored
        out = []
        for e in events:
            if e.type == "created" and first.setdefault(e.ticket, e.id) != e.id:
                log.warning("rejected event %s from %s: ticket %s was already created by event %s",
                            e.id, sender, e.ticket, first[e.ticket])
                rejected.append((e.id, f"ticket {e.ticket} already has its created event {first[e.ticket]}"))
            else:
                out.append(e)
        return out

    def outgoing(self, dest: str, after: int, limit: int) -> tuple[list[tuple[int, Event]], int, bool]:
        """What we have queued for ``dest`` after its cursor (for its pull): at most ``limit`` events, and
        at most ``BATCH_EVENTS_MAX_BYTES`` of them (``within_bytes``), as stored, sent without parsing;
        the last position queued for it; and whether the events were cut short of ``limit`` by their
        size (the puller asks again at once, as after a full answer).

        A peer that asks for what comes after ``after`` holds everything up to it (its cursor only passes
        what it stored or recorded as refused), so its ``acked`` checkpoint here moves to ``after``, as the
        answer to a push would move it: forward only, and never past what is queued for it. Without this a
        peer that only pulls (a district behind NAT that we cannot push to) would never have its queue
        pruned, and anti-entropy would take all of its events for ever in flight and never repair them.
        The write is a short transaction of its own, only when the checkpoint moves, so that reading the
        batch does not hold the write lock."""
        with self.node.storage.read() as tx:
            batch = tx.outbox_batch(dest, after, limit)
            last = tx.outbox_last_id(dest)
            acked = tx.peer(dest)["acked"]
        if min(after, last) > acked:
            with self.node.storage.transaction() as tx:
                tx.advance_peer(dest, acked=min(after, last))
        items = within_bytes(batch)
        return items, last, len(items) < len(batch)
