"""The sync engine: one queue per destination, one transmission loop each.

Design (after Synapse's federation sender):

- The queue for a destination is the outbox rows for it, written in the same
  transaction as the events they carry. A loop per destination wakes on new
  work (``wake``) or on the scheduler's tick, and sends bounded batches in
  order, starting after the destination's durable checkpoint (``acked``).
  The tick (``wake_due``) wakes only the loops whose queue holds something
  they may send now, found with one read for all of them, and a loop woken
  by a peer's request reaching us (``on_contact``) first reads whether
  anything is queued for it: an idle loop costs no write. (Waking every loop took the
  lease in a write transaction for each peer: a hub with 500 idle districts
  spent a fifth of a core on it.)
- A loop only transmits while it holds the destination's lease in the
  database, so several processes sharing one database (hubs on PostgreSQL)
  never send the same queue twice.
- A batch smaller than a full one waits until ``sync.push_gap_s`` after the
  last push to that peer started, and is read again then, so that what is
  queued meanwhile travels with it: a hub storing a district's backlog
  queues a few routings for it at every batch, and pushed them back one
  small push per batch, each a signed request and two transactions at both
  ends. A full batch goes at once, and so does the first push after a quiet
  spell or after a full one (the end of a backlog).
- Short failures are retried inside the transport (tenacity). When those give
  up, the destination's failure count and next attempt time are stored
  (node.backoff: exponential, capped, jittered) and the loop waits; contact
  from the peer resets them. A signed refusal of a batch's content (400, 413,
  422; ``PeerError.refused``) or a per-event rejection moves the items to the
  dead-letter list, from which an admin can replay them. A refusal of who we
  are (401, 403) or an answer we cannot verify is about the link, not the
  items: it backs off like an outage, and the queue waits, whole.
- Pull is the catch-up path: the receiver asks for what the peer has queued
  for it after its own cursor, and applies it through the same Receiver as a
  push. Pushes and pulls move the same checkpoints, so neither repeats work
  (the peer serving a pull moves our ``acked`` there to the cursor we ask
  after). Like a push's receiver, a pull first refreshes the directory when
  the batch carries signing keys unknown here (``refresh_directory``).
  A peer that has reached us within the last pull interval is up and sends its
  own queue, so we do not pull from it meanwhile: a pull racing a push only
  fetches the same events twice (one side unreachable from the other, a
  district behind NAT for instance, still gets its pulls).
- A pulled item is never skipped unrecorded, and no item holds a pull for
  ever. What may pass later (an event signed by a key still unknown or
  revoked here after the refresh) holds the cursor: the batch is applied
  only up to it, and the next pull asks again from there, after another
  refresh. An item asked for on ``HOLD_PULLS`` pulls in a row is given up
  on the last of them: it goes to the receiver with the rest. What can never
  pass (a bad signature, a malformed event, equivocation) and an item given
  up are dead-lettered here, under the peer's name and with the reason
  ("refused here: ..."), in the transaction that moves the cursor past them,
  and logged at error level: nobody else hears of a pull's rejections, so
  this is where an admin sees them. The peer still holds the event, and
  anti-entropy offers it again for a ticket we hold, since our cursor past
  it tells the peer it is no longer in flight; it is skipped there while it
  is listed, and replaying such a dead letter (we hold no copy to send)
  takes it off the list, so that the next pass checks it again. The count
  is kept in memory: a restart gives a held item its pulls again.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable

import orjson

from adapters.transport import Peer
from node.backoff import next_delay
from node.chain import ChainRecovery
from node.clock import MAX_AHEAD_MS, parse_hlc
from node.errors import NotFound, PeerError, SimpulError, ValidationError
from schemas.events import within_bytes

log = logging.getLogger(__name__)


RECHECK_S = 1.0  # a backed-off peer's stored backoff is read at most this often
MAX_DEAD_LETTER_ID = 2**63 - 1  # the largest integer the drivers bind; SQLite raises OverflowError past it
CLOCK_PAGE = 500  # dead letters read per query of ``replay_clock_refusals``
HOLD_PULLS = 10  # pulls that a pulled event signed by a key unknown here is asked for before it is given up


class SyncEngine:
    def __init__(self, node, transport, receiver, *, now: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 refresh_directory: Callable[[], Awaitable[None]] | None = None):
        self.node = node
        self.transport = transport
        self.receiver = receiver
        self.refresh_directory = refresh_directory   # None: this node has no directory to refresh (tests)
        self.cfg = node.settings.sync
        self.now = now
        self.rand = rand
        # Stable across restarts of the same process (same node, host and port), so a process that was
        # killed takes its own lease back at once; distinct for each process of a multi-process hub.
        self.owner = f"{node.node_id}@{socket.gethostname()}:{node.settings.port}"
        if len(self.owner) > 100:  # the lease_owner column's width: a long host name goes in as a digest
            self.owner = f"{node.node_id}@{hashlib.sha256(self.owner.encode()).hexdigest()[:32]}"
        self._wakers: dict[str, asyncio.Event] = {}
        self._heard: dict[str, float] = {}      # peer -> when it last reached us
        self._resting: dict[str, float] = {}    # peer -> until when a wake need not look (backing off)
        self._contacted: set[str] = set()       # peers whose loop a request of theirs woke (work unknown)
        self._peers: dict[str, Peer] = {}
        self._held: dict[str, tuple[str, int]] = {}  # peer -> (pulled event holding our cursor, pulls so far)
        self._pushed_at: dict[str, tuple[float, bool]] = {}  # peer -> (when our last push to it started, full?)
        self._tasks: dict[str, asyncio.Task] = {}
        self._looking: asyncio.Future | None = None   # a broadcast wake's look for loops with work
        self._look_again = False
        self._running = False
        self.sent = 0
        # A district confirms its own chain with the hub before its first push (node.chain); one that has no
        # hub to push to has nothing to confirm it with.
        self.chain = (ChainRecovery(node, transport, receiver, now=now)
                      if node.role != "hub" and node.settings.hub.url else None)

    # -- peers -------------------------------------------------------------------------
    def _peers_sync(self) -> list[Peer]:
        s = self.node.settings
        if self.node.role != "hub":
            return [Peer(s.hub.node_id, s.hub.url)] if s.hub.url else []
        with self.node.storage.read() as tx:
            return [Peer(n["node_id"], n["url"]) for n in tx.nodes()
                    if n["role"] == "district" and n["enrolled_at"] and not n["revoked_at"] and n["url"]]

    async def peers(self) -> list[Peer]:
        return await self.node.db(self._peers_sync)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._running = True
        await self.refresh_peers()

    async def refresh_peers(self) -> None:
        """Start a loop for each enrolled peer, and stop the loops of peers no longer enrolled (revoked):
        their queues stay, for a re-enrolment."""
        peers = await self.peers()
        for peer in peers:
            self._peers[peer.node_id] = peer          # a re-enrolled peer's new URL applies at once
            if peer.node_id not in self._tasks or self._tasks[peer.node_id].done():
                self._wakers[peer.node_id] = asyncio.Event()
                self._tasks[peer.node_id] = asyncio.create_task(self._loop(peer.node_id), name=f"sync-{peer.node_id}")
        gone = set(self._tasks) - {p.node_id for p in peers}
        for name in gone:
            log.info("no longer sending to %s: it is not an enrolled peer any more", name)
            self._tasks.pop(name).cancel()
            self._wakers.pop(name, None)

    async def stop(self) -> None:
        self._running = False
        if self._looking is not None:
            self._looking.cancel()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        owner = self.owner
        for dest in list(self._tasks):
            try:
                await self.node.db(self._release, dest, owner)
            except SimpulError:
                pass
        await self.transport.close()

    def _release(self, dest: str, owner: str) -> None:
        with self.node.storage.transaction() as tx:
            tx.release_lease(dest, owner)

    def on_contact(self, peer: str) -> None:
        """The peer reached us: it is up, so stop backing off and send now, if anything is queued for it (the
        loop reads that before it takes its lease: a hub hears from each district every pull interval)."""
        self._heard[peer] = self.now()
        self._resting.pop(peer, None)
        self._contacted.add(peer)
        self.wake(peer)

    def pushing(self, peer: str) -> bool:
        """Has ``peer`` reached us within a pull interval (so it sends its queue itself)?"""
        heard = self._heard.get(peer)
        return heard is not None and self.now() - heard < self.cfg.pull_interval_s

    def _rest(self, dest: str, until: float) -> None:
        """Remember that ``dest`` is backed off until ``until``, for at most RECHECK_S: the stored backoff
        stays the truth (``simpul sync replay`` in another process lifts it), read again after that."""
        self._resting[dest] = min(until, self.now() + RECHECK_S)

    def wake(self, dest: str | None = None) -> None:
        """Wake ``dest``'s loop. Without ``dest`` (new work, for whom the caller does not say), wake the loops
        with something to send, found by one read: an operator's action at a hub queues work for one or
        two districts of hundreds, and the others need not take their lease for nothing. A node with one
        loop (a district, on every filing) wakes it at once."""
        if dest is not None:
            if waker := self._wakers.get(dest):
                waker.set()
            return
        if len(self._wakers) <= 1:
            for waker in self._wakers.values():
                waker.set()
            return
        self._look_again = True
        if self._looking is None or self._looking.done():
            self._looking = asyncio.ensure_future(self._look())

    async def _look(self) -> None:
        """``wake_due`` until no broadcast ``wake`` came in meanwhile (those share one look)."""
        while self._look_again:
            self._look_again = False
            try:
                await self.wake_due()
            except Exception:  # noqa: BLE001 - the next tick looks again; it is logged
                log.exception("could not read which sync loops have work; the next tick looks again")
                return

    async def wake_due(self) -> None:
        """The periodic tick: wake the loops with something to send now (work queued by another process
        sharing the database, or a backoff that expired)."""
        if self._wakers:
            for name in await self.node.db(self._due, list(self._wakers)):
                self.wake(name)

    def _due(self, names: list[str]) -> list[str]:
        """Of ``names``, those with entries queued past their checkpoint and no backoff in force, and those
        with no checkpoint row yet (their first drain writes it)."""
        with self.node.storage.read() as tx:
            ready, known = tx.sendable(self.now()), tx.peer_ids()
        return [n for n in names if n in ready or n not in known]

    async def _loop(self, name: str) -> None:
        waker = self._wakers[name]
        while self._running:
            try:
                await self.drain(self._peers[name])
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a loop must outlive any one failure; it is logged
                log.exception("sync loop for %s failed; retrying at the next wake", name)
            await waker.wait()   # (``wake`` on new work, or the tick's ``wake_due``)
            waker.clear()

    # -- push --------------------------------------------------------------------------
    def _next_batch(self, dest: str, after: int | None = None, if_queued: bool = False):
        """(after, items, full) to send next, from the acknowledged checkpoint or from ``after`` if later;
        ``full``: the batch is as large as a batch may be (more may wait behind it). ``if_queued``: first
        read whether anything is queued, and take no lease (a write) if not."""
        now = self.now()
        if if_queued:
            with self.node.storage.read() as tx:
                if tx.has_queued(dest) is False:
                    return None, None, False
        with self.node.storage.transaction() as tx:
            peer = tx.peer(dest)
            if peer["next_attempt_at"] > now:
                self._rest(dest, peer["next_attempt_at"])
                return None, None, False
            if not tx.take_lease(dest, self.owner, now, self.cfg.lease_ttl_s):
                return None, None, False
            after = peer["acked"] if after is None else max(after, peer["acked"])
            read = tx.outbox_batch(dest, after, self.cfg.batch_size)
            items = within_bytes(read)
            return after, items, len(read) == self.cfg.batch_size or len(items) < len(read)

    def _gap_left(self, dest: str) -> float:
        """Seconds until a batch that is not full may go to ``dest``: ``sync.push_gap_s`` after our last
        push to it started, unless that push was full (the end of a backlog goes at once)."""
        started, full = self._pushed_at.get(dest, (None, True))
        return 0.0 if full else started + self.cfg.push_gap_s - asyncio.get_running_loop().time()

    async def drain(self, peer: Peer) -> int:
        """Send everything queued for ``peer`` now; return how many items went.

        Up to ``sync.inflight`` batches are in flight at once, and the next one is read from the outbox
        while they travel, so the peer's work and ours overlap instead of taking turns. Batches are
        settled in the order they were sent, whatever order their answers come in: the checkpoint
        (``acked``) only ever moves past a batch once every batch before it was answered. If a push
        fails, the ones behind it are abandoned (cancelled, or their answers ignored) and sent again
        from the checkpoint after the backoff; the peer stores a batch it already holds as duplicates.
        """
        sent = 0
        if self._resting.get(peer.node_id, 0.0) > self.now():
            return 0  # backing off: known without a transaction (intake wakes us on every filing)
        if self.chain is not None and not self.chain.confirmed and not await self._confirm_chain(peer):
            return 0
        window: deque[tuple[list, asyncio.Future]] = deque()
        # Woken by a peer's request, with no work known: look before taking the lease. (A wake on new work,
        # or the tick's, which read the queue already, need not.)
        contacted = peer.node_id in self._contacted
        self._contacted.discard(peer.node_id)
        after, batch, full = await self.node.db(self._next_batch, peer.node_id, None, contacted)
        try:
            while (batch or window) and (self._running or not self._tasks):
                while batch and len(window) < self.cfg.inflight:
                    if not full and (rest := self._gap_left(peer.node_id)) > 0:
                        await asyncio.sleep(rest)   # what is queued meanwhile goes in this push: read again
                        after, batch, full = await self.node.db(self._next_batch, peer.node_id, after)
                        continue
                    self._pushed_at[peer.node_id] = (asyncio.get_running_loop().time(), full)
                    window.append((batch, asyncio.ensure_future(self.transport.push(peer, after, batch))))
                    after, batch, full = await self.node.db(self._next_batch, peer.node_id, batch[-1][0])
                sending, push = window.popleft()
                try:
                    result = await push
                except PeerError as exc:
                    if not exc.refused:
                        await self.node.db(self._failed, peer.node_id, str(exc))
                        return sent
                    log.error("push to %s refused permanently: %s", peer.node_id, exc)
                    await self.node.db(self._settle, peer.node_id, sending,
                                       [(e.id, str(exc)) for _, e in sending], 0)
                else:
                    await self.node.db(self._settle, peer.node_id, sending, list(result.rejected), result.cursor)
                    sent += len(sending)
                    self.sent += len(sending)
        finally:
            for _, push in window:  # abandoned behind a failure (or a stop): nothing of theirs is settled
                push.cancel()
            await asyncio.gather(*(push for _, push in window), return_exceptions=True)
        return sent

    async def _confirm_chain(self, peer: Peer) -> bool:
        """Confirm our chain with the hub (``ChainRecovery``); False if the hub cannot be asked now (backed
        off like a failed push). A hub of an earlier release, which cannot answer, and an answer that cannot
        be used are logged, and pushes go on as they did before this check."""
        try:
            await self.chain.confirm(peer)
            return True
        except PeerError as exc:
            if exc.retryable:
                await self.node.db(self._failed, peer.node_id, f"confirming our chain: {exc}")
                return False
            if exc.peer_status in (404, 405):
                log.warning("%s cannot compare our chain with its copy (an earlier release?): pushing "
                            "unconfirmed; a copy of this node restored from an older backup would sign its events "
                            "again", peer.node_id)
            else:
                log.error("could not confirm our chain with %s: %s; pushing unconfirmed", peer.node_id, exc)
            self.chain.confirmed = True
            return True

    def _failed(self, dest: str, error: str) -> None:
        with self.node.storage.transaction() as tx:
            failures = tx.peer(dest)["failures"] + 1
            delay = next_delay(failures, base=self.cfg.backoff_base_s, cap=self.cfg.backoff_cap_s, rand=self.rand)
            tx.update_peer(dest, failures=failures, next_attempt_at=self.now() + delay, last_error=error[:500])
        self._rest(dest, self.now() + delay)
        log.warning("push to %s failed (%d in a row), next attempt in %.1fs: %s", dest, failures, delay, error)

    def _settle(self, dest: str, batch, rejected: list[tuple[str, str]], peer_cursor: int) -> None:
        last = batch[-1][0]
        with self.node.storage.transaction() as tx:
            tx.add_dead_letters(dest, rejected)
            tx.advance_peer(dest, acked=max(last, min(peer_cursor, tx.outbox_last_id(dest))))
            tx.update_peer(dest, last_contact=self.now(), failures=0, next_attempt_at=0.0, last_error="")
        for event_id, reason in rejected:
            log.error("event %s dead-lettered for %s: %s", event_id, dest, reason)

    # -- pull --------------------------------------------------------------------------
    async def pull(self, peer: Peer) -> int:
        got = 0
        while not self.pushing(peer.node_id):
            cursor = (await self.node.db(self._peer_row, peer.node_id))["cursor"]
            try:
                result = await self.transport.pull(peer, cursor, self.cfg.batch_size)
            except PeerError as exc:
                log.info("pull from %s failed: %s", peer.node_id, exc)
                await self.node.db(self._note_error, peer.node_id, str(exc))
                return got
            items = [{"pos": pos, "event": ev} for pos, ev in result.items]
            take = self._hold_point(peer.node_id, items, await self.learn_keys(peer.node_id, items))
            if take:
                received = await self.node.db(self._receive_pulled, peer.node_id, cursor, items[:take])
                got += received.accepted
                for event_id, reason in received.rejected:
                    log.error("event %s pulled from %s was refused here and dead-lettered: %s",
                              event_id, peer.node_id, reason)
            else:
                await self.node.db(self._contact, peer.node_id)
            if take < len(items) or not (len(items) >= self.cfg.batch_size or result.more):
                return got   # (held: the next pull asks again, after the next directory refresh)
        return got

    def _receive_pulled(self, source: str, cursor: int, items: list[dict]):
        return self.receiver.receive(source, cursor, items, dead_letter=True)

    def _hold_point(self, source: str, items: list[dict], unknown: set[str]) -> int:
        """How many of ``items`` to apply now: those before the first one signed by a key still unknown (or
        revoked) here, so that the cursor stays before it and the next pull asks again; all of them if there
        is none. An item met on HOLD_PULLS pulls in a row is given up: it goes to the receiver with the rest,
        which refuses it, and it is dead-lettered."""
        for n, item in enumerate(items):
            event = item["event"]
            key = event.get("key") if isinstance(event, dict) else None
            if not isinstance(key, str) or key not in unknown:
                continue
            event_id = str(event.get("id"))
            held, pulls = self._held.get(source, ("", 0))
            pulls = pulls + 1 if held == event_id else 1
            if pulls < HOLD_PULLS:
                self._held[source] = (event_id, pulls)
                log.error("event %s pulled from %s is signed by %s, a key unknown or revoked here: the cursor "
                          "stays before it, and the next pull asks again (%d of %d)", event_id, source, key,
                          pulls, HOLD_PULLS)
                return n
            log.error("event %s pulled from %s is still signed by %s, a key unknown or revoked here, after %d "
                      "pulls: giving up on it, it will be dead-lettered", event_id, source, key, pulls)
        self._held.pop(source, None)
        return len(items)

    async def learn_keys(self, source: str, items: list[dict]) -> set[str]:
        """Refresh the directory first if ``items`` (a batch pulled from ``source``, or pushed by it) carry
        signing keys unknown here (a node enrolled, or a key rotated, since the last refresh): else their
        events would be refused for good. Return the keys still unknown."""
        if not items:
            return set()
        unknown = await self.node.db(self.receiver.unknown_keys, items)
        if unknown and self.refresh_directory is not None:
            log.info("a batch from %s carries events signed by key(s) unknown here (%s); refreshing the "
                     "directory first", source, ", ".join(sorted(unknown)[:5]))
            await self.refresh_directory()
            unknown = await self.node.db(self.receiver.unknown_keys, items)
        return unknown

    async def pull_all(self) -> None:
        for peer in await self.peers():
            try:
                await self.pull(peer)
            except Exception:  # noqa: BLE001 - one peer's failure must not stop the pulls from the others
                log.exception("pull from %s failed; the pulls from the other peers go on", peer.node_id)

    def _peer_row(self, dest: str) -> dict:
        with self.node.storage.transaction() as tx:
            return tx.peer(dest)

    def _contact(self, dest: str) -> None:
        with self.node.storage.transaction() as tx:
            tx.update_peer(dest, last_contact=self.now(), failures=0, next_attempt_at=0.0, last_error="")

    def _note_error(self, dest: str, error: str) -> None:
        with self.node.storage.transaction() as tx:
            tx.update_peer(dest, last_error=error[:500])

    def prune(self, retention_s: float) -> int:
        """Drop outbox rows the peer acknowledged, once older than the retention."""
        removed = 0
        with self.node.storage.transaction() as tx:
            for dest in tx.outbox_dests():
                removed += tx.prune_outbox(dest, tx.peer(dest)["acked"], self.now() - retention_s)
        return removed

    # -- dead letters --------------------------------------------------------------------
    def replay(self, ids: list[int] | None = None) -> int:
        return replay_dead_letters(self.node.storage, ids, self.now())

    def replay_clock_refusals(self) -> int:
        """Replay the dead letters of events that were stamped too far ahead when a peer refused them, and no
        longer are. A clock that ran ahead and was set back leaves the node stamping from its last event
        for a while (node.clock), and the hub refuses those events; before, they stayed dead letters until
        an operator replayed them. Judged on the event itself (its clock against the time it was refused,
        and against now), not on the peer's wording; the list is read a page at a time."""
        now_ms, due, after = int(self.now() * 1000), [], 0
        while True:
            with self.node.storage.read() as tx:
                rows = tx.dead_letters(after=after, limit=CLOCK_PAGE)
                raw = tx.stored_raw([r["event_id"] for r in rows])
            for row in rows:
                if row["event_id"] not in raw:
                    continue
                stamped = parse_hlc(orjson.loads(raw[row["event_id"]])["hlc"])[0]
                if row["created_at"] * 1000 + MAX_AHEAD_MS < stamped < now_ms + MAX_AHEAD_MS - 60_000:
                    due.append(row["id"])
            if len(rows) < CLOCK_PAGE:
                break
            after = rows[-1]["id"]
        if due:
            log.warning("replaying %d dead letter(s) refused while stamped too far ahead, as they no longer are",
                        len(due))
            return replay_dead_letters(self.node.storage, due, self.now())
        return 0


def replay_dead_letters(storage, ids: list[int] | None = None, now: float | None = None) -> int:
    """Queue dead letters again (all unreplayed ones when ``ids`` is None) and lift their peers' backoff.

    A dead letter of an event not held here (one we pulled and refused) is only marked replayed: there is
    nothing here to send, and queueing its id would leave an outbox row with no event behind it. The peer
    still holds the event, and anti-entropy offers it again."""
    wrong = [i for i in ids or () if not 1 <= i <= MAX_DEAD_LETTER_ID]
    if wrong:
        raise ValidationError(f"dead letter id {wrong[0]}: ids run from 1 to {MAX_DEAD_LETTER_ID}")
    with storage.transaction() as tx:
        chosen = [r["id"] for r in tx.dead_letters()] if ids is None else ids
        replayed = tx.mark_replayed(chosen, now)
        missing = sorted(set(chosen) - {row["id"] for row in replayed})
        if ids is not None and missing:   # (all or nothing: the transaction undoes the marks above)
            raise NotFound(f"no dead letter {', '.join(map(str, missing[:10]))} waits to be replayed (unknown, "
                           "or replayed already)")
        held = tx.existing_event_ids(row["event_id"] for row in replayed)
        by_dest: dict[str, list[str]] = {}
        for row in replayed:
            if row["event_id"] in held:
                by_dest.setdefault(row["dest"], []).append(row["event_id"])
        for dest, event_ids in by_dest.items():   # each queue in dead-letter order
            tx.enqueue(dest, event_ids)
            tx.update_peer(dest, failures=0, next_attempt_at=0.0)
    return len(replayed)
