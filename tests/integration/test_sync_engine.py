"""The sync engine's bookkeeping on a real node database: pipelined pushes, pruning and dead-letter replay.

The pushes here go to a scripted transport (a unit-level stand-in, so that the order in which answers come
back can be chosen); real pushes between node processes are in tests/acceptance.
"""
import asyncio
import time

import orjson
import pytest

from adapters.transport import Peer, PullResult, PushResult
from node.errors import PeerError
from node.sync import SyncEngine


class NoTransport:
    async def close(self):
        pass


def test_prune_drops_only_acknowledged_rows_older_than_the_retention(make_node, tmp_path, sample_complaints):
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    for body in sample_complaints[:3]:
        node.complaints.file(ComplaintIn.model_validate(body))
    engine = SyncEngine(node, NoTransport(), receiver=None, now=lambda: 10**10)
    with node.storage.transaction() as tx:
        ids = [pos for pos, _ in tx.outbox_batch("nasional", 0, 10)]
        tx.advance_peer("nasional", acked=ids[1])
    assert engine.prune(retention_s=3600) == 2            # the third is not acknowledged yet
    with node.storage.read() as tx:
        assert [pos for pos, _ in tx.outbox_batch("nasional", 0, 10)] == ids[2:]
    assert SyncEngine(node, NoTransport(), None).prune(retention_s=3600) == 0   # too recent


def test_replay_requeues_dead_letters_once(make_node, tmp_path, sample_complaints):
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    ticket = node.complaints.file(ComplaintIn.model_validate(sample_complaints[0])).state.ticket_id
    with node.storage.transaction() as tx:
        event_id = tx.ticket_events(ticket)[0].id
        tx.add_dead_letters("nasional", [(event_id, "422 from peer")])
        before = tx.outbox_depth("nasional", 0)
    engine = SyncEngine(node, NoTransport(), None)
    assert engine.replay() == 1
    assert engine.replay() == 0
    with node.storage.read() as tx:
        assert tx.outbox_depth("nasional", 0) == before + 1
        assert tx.dead_letters() == []


def test_replay_requeues_each_destination_in_dead_letter_order(make_node, tmp_path, sample_complaints):
    """Replay by id: only the chosen letters are queued again, each destination's in the order they were
    dead-lettered, and only their destinations' backoff is lifted."""
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    events = []
    for body in sample_complaints[:5]:
        ticket = node.complaints.file(ComplaintIn.model_validate(body)).state.ticket_id
        with node.storage.read() as tx:
            events.append(tx.ticket_events(ticket)[0].id)
    with node.storage.transaction() as tx:
        tx.add_dead_letters("nasional", [(events[3], "422"), (events[0], "422"), (events[4], "422")])
        tx.add_dead_letters("kab-ppu", [(events[1], "403")])
        tx.add_dead_letters("prov-kaltim", [(events[2], "403")])
        for peer in ("nasional", "kab-ppu", "prov-kaltim"):
            tx.update_peer(peer, failures=4, next_attempt_at=9e9)
        letters = {r["event_id"]: r["id"] for r in tx.dead_letters()}
        start = {d: tx.outbox_last_id(d) for d in ("nasional", "kab-ppu", "prov-kaltim")}
    chosen = [letters[events[4]], letters[events[1]], letters[events[3]]]
    assert SyncEngine(node, NoTransport(), None).replay(chosen) == 3
    with node.storage.read() as tx:
        assert [e.id for _, e in tx.outbox_batch("nasional", start["nasional"], 10)] == [events[3], events[4]]
        assert [e.id for _, e in tx.outbox_batch("kab-ppu", start["kab-ppu"], 10)] == [events[1]]
        assert tx.outbox_batch("prov-kaltim", start["prov-kaltim"], 10) == []
        assert sorted(r["event_id"] for r in tx.dead_letters()) == sorted([events[0], events[2]])
        assert {p: (tx.peer(p)["failures"], tx.peer(p)["next_attempt_at"]) for p in
                ("nasional", "kab-ppu", "prov-kaltim")} == {
            "nasional": (0, 0.0), "kab-ppu": (0, 0.0), "prov-kaltim": (4, 9e9)}


def test_replaying_a_dead_letter_of_an_event_not_held_here_queues_nothing(make_node, tmp_path, sample_complaints):
    """A pulled event refused here is dead-lettered under the peer's name, but we hold no copy of it: replaying
    it takes it off the list and must not queue an outbox row with no event behind it."""
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    ticket = node.complaints.file(ComplaintIn.model_validate(sample_complaints[0])).state.ticket_id
    with node.storage.transaction() as tx:
        own = tx.ticket_events(ticket)[0].id
        tx.add_dead_letters("nasional", [("f" * 64, "refused here: event ffff: id is not the hash of its content"),
                                         (own, "422 from peer")])
        before = tx.outbox_last_id("nasional")
    assert SyncEngine(node, NoTransport(), None).replay() == 2
    with node.storage.read() as tx:
        assert [e.id for _, e in tx.outbox_batch("nasional", before, 10)] == [own]
        assert tx.outbox_depth("nasional", before) == 1
        assert tx.dead_letters() == []


class ScriptedTransport:
    """Answers push number ``n`` with ``answer(n, after, positions)`` (awaited), counting pushes in flight."""

    def __init__(self, answer):
        self.answer = answer
        self.sent: list[tuple[int, list[int]]] = []
        self.in_flight = self.most_in_flight = 0

    async def push(self, peer, after, items):
        n = len(self.sent)
        self.sent.append((after, [pos for pos, _ in items]))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self.answer(n, after, [pos for pos, _ in items])
        finally:
            self.in_flight -= 1

    async def close(self):
        pass


def _engine(node, transport, inflight=2):
    engine = SyncEngine(node, transport, receiver=None)
    engine.cfg = engine.cfg.model_copy(update={"batch_size": 1, "inflight": inflight})
    return engine


def _queued(make_node, tmp_path, sample_complaints, n=5):
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    for body in sample_complaints[:n]:
        node.complaints.file(ComplaintIn.model_validate(body))
    with node.storage.read() as tx:
        positions = [pos for pos, _ in tx.outbox_batch("nasional", 0, 100)]
    return node, positions


def _acked(node) -> int:
    with node.storage.read() as tx:
        return tx.peer("nasional")["acked"]


async def test_pushes_overlap_and_settle_in_the_order_sent(make_node, tmp_path, sample_complaints):
    node, positions = _queued(make_node, tmp_path, sample_complaints)
    second_answered = asyncio.Event()
    seen_by_first: list[int] = []

    async def answer(n, after, sent):
        if n == 0:                      # the first answer comes back last ...
            await asyncio.wait_for(second_answered.wait(), 10)   # (never, with one push at a time)
            seen_by_first.append(_acked(node))
        if n == 1:
            second_answered.set()
        return PushResult(accepted=len(sent), duplicates=0, rejected=(), cursor=0)

    transport = ScriptedTransport(answer)
    engine = _engine(node, transport)
    assert await engine.drain(Peer("nasional", "http://127.0.0.1:1")) == len(positions)
    assert transport.most_in_flight == 2
    assert [after for after, _ in transport.sent] == [0, *positions[:-1]]    # each batch once, in order
    assert seen_by_first == [0]          # ... and the second's answer did not move the checkpoint past it
    assert _acked(node) == positions[-1]


async def test_a_failed_push_abandons_the_batches_behind_it(make_node, tmp_path, sample_complaints):
    node, positions = _queued(make_node, tmp_path, sample_complaints)
    second_answered = asyncio.Event()

    async def answer(n, after, sent):
        if n == 0:
            await asyncio.wait_for(second_answered.wait(), 10)   # (never, with one push at a time)
            raise PeerError("hub unreachable", retryable=True)
        second_answered.set()
        return PushResult(accepted=len(sent), duplicates=0, rejected=(), cursor=0)

    engine = _engine(node, ScriptedTransport(answer))
    assert await engine.drain(Peer("nasional", "http://127.0.0.1:1")) == 0
    assert _acked(node) == 0                         # the second batch was answered, but it is not settled
    with node.storage.read() as tx:
        assert tx.peer("nasional")["failures"] == 1
        assert tx.outbox_depth("nasional", 0) == len(positions)

    async def fine(n, after, sent):
        return PushResult(accepted=len(sent), duplicates=0, rejected=(), cursor=0)

    retry = ScriptedTransport(fine)
    engine = _engine(node, retry)
    engine.now = lambda: 10**10                      # past the backoff
    assert await engine.drain(Peer("nasional", "http://127.0.0.1:1")) == len(positions)
    assert retry.sent[0] == (0, positions[:1])       # sent again from the checkpoint
    assert _acked(node) == positions[-1]


@pytest.mark.parametrize("error, dead", [
    (PeerError("nasional answered 401: clock skew", status=401, retryable=False), False),
    (PeerError("nasional answered 403: not enrolled", status=403, retryable=False), False),
    (PeerError("nasional answered 200 without a valid signature", status=200, retryable=False), False),
    (PeerError("nasional answered 422: malformed", status=422, retryable=False, refused=True), True)])
async def test_only_a_refusal_of_the_content_dead_letters_a_batch(make_node, tmp_path, sample_complaints,
                                                                  error, dead):
    """A refusal of who we are (401, 403) or an answer we cannot verify (a hub key we do not know yet) says
    nothing about the items, which the hub may even have stored: the queue waits, whole, behind a backoff.
    Before, each such answer dead-lettered a batch and the loop went on to the next, through the backlog."""
    node, positions = _queued(make_node, tmp_path, sample_complaints)

    async def answer(n, after, sent):
        raise error

    engine = _engine(node, ScriptedTransport(answer))
    await engine.drain(Peer("nasional", "http://127.0.0.1:1"))
    with node.storage.read() as tx:
        letters = tx.dead_letters()
        peer = tx.peer("nasional")
    if dead:
        assert len(letters) == len(positions) and peer["failures"] == 0 and _acked(node) == positions[-1]
    else:
        assert letters == [] and peer["failures"] == 1 and _acked(node) == 0
        assert peer["last_error"].startswith(str(error)[:40])


@pytest.mark.parametrize("inflight", [1, 2, 3])
async def test_as_many_pushes_in_flight_as_configured(make_node, tmp_path, sample_complaints, inflight):
    node, positions = _queued(make_node, tmp_path, sample_complaints)

    async def answer(n, after, sent):
        await asyncio.sleep(0.05)       # slow enough that every push the window allows has started
        return PushResult(accepted=len(sent), duplicates=0, rejected=(), cursor=0)

    transport = ScriptedTransport(answer)
    assert await _engine(node, transport, inflight=inflight).drain(Peer("nasional", "http://127.0.0.1:1")) == 5
    assert transport.most_in_flight == inflight
    assert _acked(node) == positions[-1]


async def test_a_peer_no_longer_enrolled_gets_no_loop(make_node, tmp_path):
    """refresh_peers (run on every wake tick) starts loops for new peers and stops those of revoked ones."""
    node = make_node(tmp_path)
    engine = SyncEngine(node, NoTransport(), None)
    listed = [Peer("kab-ppu", "http://127.0.0.1:9"), Peer("kota-balikpapan", "http://127.0.0.1:9")]

    async def peers():
        return list(listed)
    engine.peers = peers
    await engine.start()
    assert set(engine._tasks) == {"kab-ppu", "kota-balikpapan"}
    stopped = engine._tasks["kab-ppu"]
    listed.pop(0)                                   # kab-ppu revoked
    await engine.refresh_peers()
    await asyncio.sleep(0)
    assert set(engine._tasks) == {"kota-balikpapan"} and stopped.cancelled()
    await engine.stop()



async def test_what_is_queued_soon_after_a_push_waits_out_the_gap_and_goes_in_one_push(
        make_node, tmp_path, sample_complaints):
    """A hub storing a district's backlog queued a few routings for it at every batch, and pushed each lot
    back at once: a small push per batch, each a signed request and two transactions at both ends. A batch
    less than full now waits until ``sync.push_gap_s`` after the last push, and what is queued meanwhile
    goes with it; a full batch goes at once, and so does the one after it (the end of a backlog)."""
    from schemas.complaints import ComplaintIn
    node, positions = _queued(make_node, tmp_path, sample_complaints, n=1)
    clock = asyncio.get_running_loop().time
    pushes: list[tuple[float, float, int]] = []   # (started, answered, items)

    class Recording(NoTransport):
        async def push(self, peer, after, items):
            started = clock()
            await asyncio.sleep(0.01)
            pushes.append((started, clock(), len(items)))
            return PushResult(accepted=len(items), duplicates=0, rejected=(), cursor=0)

    engine = SyncEngine(node, Recording(), None)
    gap = 2.0
    engine.cfg = engine.cfg.model_copy(update={"push_gap_s": gap})

    async def peers():
        return [Peer("nasional", "http://127.0.0.1:9")]
    engine.peers = peers

    async def pushed(n):
        for _ in range(1000):
            if sum(k for _, _, k in pushes) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{sum(k for _, _, k in pushes)} items pushed, not {n}")
    await engine.start()
    await pushed(len(positions))                  # the first push after a quiet spell: at once
    for body in sample_complaints[1:4]:           # three filings, a moment apart, each waking the loop
        node.complaints.file(ComplaintIn.model_validate(body))
        engine.wake("nasional")
        await asyncio.sleep(0.05)
    await pushed(len(positions) + 3)
    assert [k for _, _, k in pushes] == [len(positions), 3]
    assert pushes[1][0] - pushes[0][0] >= gap
    engine.cfg = engine.cfg.model_copy(update={"batch_size": 2, "push_gap_s": 3600.0})
    for body in sample_complaints[4:6]:           # a full batch: at once, whatever the gap
        node.complaints.file(ComplaintIn.model_validate(body))
    engine.wake("nasional")
    await pushed(len(positions) + 5)
    node.complaints.file(ComplaintIn.model_validate(sample_complaints[6]))
    engine.wake("nasional")                       # after a full push (the end of a backlog): at once too
    await pushed(len(positions) + 6)
    await engine.stop()
    assert [k for _, _, k in pushes] == [len(positions), 3, 2, 1]


@pytest.mark.parametrize("wake", ["tick", "broadcast", "by name"])
async def test_a_wake_reaches_only_the_loops_with_something_to_send(make_node, tmp_path, sample_complaints, wake,
                                                                   monkeypatch):
    """Waking every loop, on the tick or on an operator's action at a hub, took each peer's lease in a write
    transaction, idle or not: a hub with 500 idle districts spent a fifth of a core on its tick. Both now
    read which queues hold something that may go now, and wake those loops alone. A loop woken by name (a
    peer's pull or push reaching us: hundreds a minute at a hub) reads its queue before taking the lease; one
    woken on known work (the tick's, a broadcast's after their read, a filing's) does not read it again."""
    from adapters.storage.repo_sync import SyncRepo
    from schemas.complaints import ComplaintIn
    node, positions = _queued(make_node, tmp_path, sample_complaints, n=3)
    with node.storage.transaction() as tx:
        ids = [e.id for _, e in tx.outbox_batch("nasional", 0, 10)]
        for dest in ("kab-ppu", "kota-balikpapan"):
            tx.enqueue(dest, ids)
        tx.advance_peer("kab-ppu", acked=tx.outbox_last_id("kab-ppu"))       # all of it delivered
        tx.update_peer("kota-balikpapan", failures=3, next_attempt_at=9e9)     # backing off
    pushed: list[str] = []

    class Recording(NoTransport):
        async def push(self, peer, after, items):
            pushed.append(peer.node_id)
            return PushResult(accepted=len(items), duplicates=0, rejected=(), cursor=0)

    engine = SyncEngine(node, Recording(), None)
    names = ["nasional", "kab-ppu", "kota-balikpapan", "prov-kaltim"]
    assert engine._due(names) == ["nasional", "prov-kaltim"]   # (prov-kaltim: no checkpoint row yet)

    async def peers():
        return [Peer(n, "http://127.0.0.1:9") for n in names]
    engine.peers = peers
    await engine.start()                                   # each loop drains once as it starts

    async def acked_up_to(last):
        for _ in range(200):
            if _acked(node) == last:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"nasional's checkpoint stayed at {_acked(node)}, not {last}")
    await acked_up_to(positions[-1])
    assert engine._due(names) == []
    with node.storage.transaction() as tx:               # forget the leases the first drains took
        for name in names:
            tx.release_lease(name, engine.owner)
    filed = node.complaints.file(ComplaintIn.model_validate(sample_complaints[3])).state.ticket_id
    with node.storage.read() as tx:
        last = tx.outbox_last_id("nasional")
    pushed.clear()
    looked: list[str] = []
    has_queued = SyncRepo.has_queued
    monkeypatch.setattr(SyncRepo, "has_queued", lambda tx, dest: looked.append(dest) or has_queued(tx, dest))
    if wake == "tick":
        await engine.wake_due()
    elif wake == "broadcast":
        engine.wake()
    else:
        for name in names:
            engine.on_contact(name)
    await acked_up_to(last)
    await asyncio.sleep(0.1)                               # (time for any other loop woken to take its lease)
    with node.storage.read() as tx:
        leases = {n: tx.peer(n)["lease_owner"] for n in names}
    await engine.stop()
    assert pushed == ["nasional"] and filed
    assert leases == {"nasional": engine.owner, **dict.fromkeys(names[1:], "")}
    assert sorted(looked) == (sorted(names) if wake == "by name" else [])


# -- pull ----------------------------------------------------------------------------------------------------
# A district pulls what the hub queued for it. The hub here is a real node database, and the transport serves
# pulls from its real outbox through Receiver.outgoing (what GET /federation/v1/events answers), so the
# events are the ones a hub would send: kab-ppu's complaint S024, routed by the hub to an office of kab-paser,
# arrives at kab-paser as [created (signed by kab-ppu), routed (signed by the hub)].

class HubQueue:
    """Serves pulls from the hub's outbox for ``puller``; ``alter(items)`` may change the items on the way."""

    def __init__(self, hub_receiver, puller, alter=None):
        self.hub_receiver = hub_receiver
        self.puller = puller
        self.alter = alter or (lambda items: items)
        self.pulls: list[int] = []

    async def pull(self, peer, after, limit):
        self.pulls.append(after)
        batch, last, more = self.hub_receiver.outgoing(self.puller, after, limit)
        items = [(pos, e.to_wire()) for pos, e in batch]
        return PullResult(items=tuple(self.alter(items) if items else items), last=last, more=more)

    async def close(self):
        pass


HUB = Peer("nasional", "http://127.0.0.1:1")


@pytest.fixture
def federation(tmp_path, sample_dir):
    """(kab-paser, kab-ppu, nasional) as ``simpul init`` and ``simpul nodes enroll`` leave them: kab-paser
    knows the hub's keys, but not kab-ppu's (it has not refreshed its copy of the directory yet)."""
    from node.cluster import Cluster
    from node.config import load_settings
    from node.core import Node
    cluster = Cluster(tmp_path, sample_dir / "federation.json", node_ids=["kab-paser", "kab-ppu"]).init()
    nodes = [Node(load_settings(cluster.proc(n).config)) for n in ("kab-paser", "kab-ppu", "nasional")]
    yield nodes
    for node in nodes:
        node.close()


def _routed_to_paser(ppu, hub, sample_complaints):
    """kab-ppu files S024 (for kab-paser's civil registry); the hub receives it, routes it and queues it for
    kab-paser. Returns the hub's receiver and the ticket id."""
    from node.federation import KeyDirectory, Receiver
    from node.reactions import hub_react
    from schemas.complaints import ComplaintIn
    body = next(b for b in sample_complaints if b["ref"] == "S024")
    ticket = ppu.complaints.file(ComplaintIn.model_validate(body)).state.ticket_id
    with ppu.storage.read() as tx:
        items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch("nasional", 0, 100)]
    hub_receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    assert hub_receiver.receive("kab-ppu", 0, items).accepted == len(items)
    with hub.storage.read() as tx:
        queued = [e for _, e in tx.outbox_batch("kab-paser", 0, 100)]
    assert [(e.type, e.author) for e in queued] == [("created", "kab-ppu"), ("routed", "nasional")]
    return hub_receiver, ticket


def _district_engine(district, hub, transport, refresh=True):
    """kab-paser's engine, receiver and key directory; ``refresh``: whether its directory refresh reaches
    the hub (it copies the hub's directory, as the app's refresh_directory does over HTTP)."""
    from node import directory
    from node.federation import KeyDirectory, Receiver
    from node.reactions import district_react
    keydir = KeyDirectory(district.storage, district.keys)
    refreshes: list[bool] = []

    async def refresh_directory():
        refreshes.append(refresh)
        if refresh:
            with hub.storage.read() as tx:
                snap = directory.snapshot(tx)
            with district.storage.transaction() as tx:
                directory.apply_snapshot(tx, snap, district.node_id)
            keydir.forget()
    engine = SyncEngine(district, transport, Receiver(district, keydir, district_react(district)),
                        refresh_directory=refresh_directory)
    return engine, keydir, refreshes


def _held(district, event_ids) -> set[str]:
    with district.storage.read() as tx:
        return tx.existing_event_ids(event_ids)


async def test_a_pull_learns_keys_it_does_not_know_before_applying_the_batch(federation, sample_complaints):
    """Before, kab-paser applied the batch at once: the created event (signed by kab-ppu, whose key it did
    not know yet) was rejected, its cursor moved past it, and nothing recorded it: the ticket was lost."""
    paser, ppu, hub = federation
    hub_receiver, ticket = _routed_to_paser(ppu, hub, sample_complaints)
    engine, keydir, refreshes = _district_engine(paser, hub, HubQueue(hub_receiver, "kab-paser"))
    assert keydir.lookup(ppu.keys.signing_key_id) is None

    assert await engine.pull(HUB) == 2
    assert refreshes == [True]
    with hub.storage.read() as tx:
        queued = [(pos, e.id) for pos, e in tx.outbox_batch("kab-paser", 0, 100)]
    assert _held(paser, [i for _, i in queued]) == {i for _, i in queued}
    with paser.storage.read() as tx:
        assert tx.get_ticket(ticket).holder_node == "kab-paser"
        assert tx.peer("nasional")["cursor"] == queued[-1][0]
        assert tx.dead_letters() == []
    assert await engine.pull(HUB) == 0 and refreshes == [True]     # keys known now: no second refresh


class Outage:
    """The hub unreachable until ``back`` is set; then ``hub_queue`` answers."""

    def __init__(self, hub_queue):
        self.hub_queue, self.back = hub_queue, False

    async def pull(self, peer, after, limit):
        if not self.back:
            raise PeerError("nasional unreachable: connection refused", retryable=True)
        return await self.hub_queue.pull(peer, after, limit)

    async def close(self):
        pass


@pytest.mark.parametrize("queued", [True, False], ids=["events-waiting", "nothing-waiting"])
async def test_a_pull_that_reaches_the_hub_again_clears_the_error_of_the_outage(federation, sample_complaints,
                                                                              queued):
    """Before, the failed pull's error stayed in ``simpul status`` (with 0 failures and a fresh last contact)
    until the next failed or successful push, which a district with nothing to send may not make for days."""
    from node.federation import KeyDirectory, Receiver
    paser, ppu, hub = federation
    if queued:
        hub_receiver = _routed_to_paser(ppu, hub, sample_complaints)[0]
    else:
        hub_receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), lambda *a: None)
    outage = Outage(HubQueue(hub_receiver, "kab-paser"))
    engine = _district_engine(paser, hub, outage)[0]

    def last_error():
        with paser.storage.read() as tx:
            return tx.peer("nasional")["last_error"]
    assert await engine.pull(HUB) == 0
    assert last_error().startswith("nasional unreachable")
    outage.back = True
    assert await engine.pull(HUB) == (2 if queued else 0)
    assert last_error() == ""


def _pull_state(district, hub) -> tuple[list[tuple[int, str]], int, list[dict]]:
    """(the hub's queue for kab-paser as (position, event id), kab-paser's cursor, kab-paser's dead letters)"""
    with hub.storage.read() as tx:
        queued = [(pos, e.id) for pos, e in tx.outbox_batch("kab-paser", 0, 100)]
    with district.storage.read() as tx:
        return queued, tx.peer("nasional")["cursor"], tx.dead_letters()


async def test_a_pulled_event_signed_by_a_key_unknown_here_holds_the_cursor_before_it(federation, sample_complaints,
                                                                                        caplog):
    """The directory refresh does not reach the hub: the created event (kab-ppu's key) is not applied, nor
    anything behind it, and the cursor stays before it, so the next pull asks again. Before, the cursor moved
    past it and the event was gone, with nothing recorded."""
    import logging
    paser, ppu, hub = federation
    hub_receiver, ticket = _routed_to_paser(ppu, hub, sample_complaints)
    transport = HubQueue(hub_receiver, "kab-paser")
    offline, _, refreshes = _district_engine(paser, hub, transport, refresh=False)
    with caplog.at_level(logging.ERROR, logger="node.sync"):
        assert await offline.pull(HUB) == 0
    queued, cursor, letters = _pull_state(paser, hub)
    assert cursor == 0 and letters == [] and _held(paser, [i for _, i in queued]) == set()
    assert refreshes == [False]
    assert any(queued[0][1] in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    online, _, _ = _district_engine(paser, hub, transport)      # the next pull's refresh reaches the hub
    assert await online.pull(HUB) == 2
    queued, cursor, letters = _pull_state(paser, hub)
    assert cursor == queued[-1][0] and letters == []
    assert transport.pulls == [0, 0]


async def test_a_pulled_event_whose_key_stays_unknown_is_given_up_and_dead_lettered(federation, sample_complaints):
    """A key that never becomes known (its node revoked, say) does not hold the pull for ever: after
    HOLD_PULLS pulls the event is refused, recorded in the dead-letter list, and the rest goes through."""
    from node.sync import HOLD_PULLS
    paser, ppu, hub = federation
    hub_receiver, ticket = _routed_to_paser(ppu, hub, sample_complaints)
    transport = HubQueue(hub_receiver, "kab-paser")
    engine, _, refreshes = _district_engine(paser, hub, transport, refresh=False)
    for _ in range(HOLD_PULLS - 1):
        assert await engine.pull(HUB) == 0
        assert _pull_state(paser, hub)[1:] == (0, [])
    assert await engine.pull(HUB) == 1
    queued, cursor, letters = _pull_state(paser, hub)
    assert cursor == queued[-1][0]
    assert [(r["dest"], r["event_id"]) for r in letters] == [("nasional", queued[0][1])]
    assert letters[0]["reason"].startswith("refused here: ") and "unknown or revoked" in letters[0]["reason"]
    assert _held(paser, [i for _, i in queued]) == {queued[1][1]}
    assert len(refreshes) == HOLD_PULLS
    assert await engine.pull(HUB) == 0 and len(_pull_state(paser, hub)[2]) == 1   # asked for no more


def _forge(items):
    """The created event with its title changed after signing."""
    (pos, event), rest = items[0], items[1:]
    return [(pos, {**event, "payload": {**event["payload"], "title": "palsu"}})] + rest


def _mangle(items):
    """The created event replaced by something that is not an event, with an id longer than any."""
    return [(items[0][0], {"id": "x" * 100, "type": "created"})] + items[1:]


@pytest.mark.parametrize("alter, dead_id, reason", [(_forge, None, "not the hash of its content"),
                                                    (_mangle, "x" * 64, "missing field")], ids=["forged", "malformed"])
async def test_a_pulled_event_that_can_never_pass_is_dead_lettered(federation, sample_complaints, alter, dead_id,
                                                                   reason, caplog):
    """Before, a pull ignored what the receiver rejected: the cursor moved past it and nothing recorded it."""
    import logging
    paser, ppu, hub = federation
    hub_receiver, ticket = _routed_to_paser(ppu, hub, sample_complaints)
    transport = HubQueue(hub_receiver, "kab-paser", alter)
    engine, _, _ = _district_engine(paser, hub, transport)
    with caplog.at_level(logging.ERROR, logger="node.sync"):
        assert await engine.pull(HUB) == 1
    queued, cursor, letters = _pull_state(paser, hub)
    assert cursor == queued[-1][0]                           # not asked for again: it would fail again
    dead_id = dead_id or queued[0][1]                        # (an id longer than any is cut to the column)
    assert [(r["dest"], r["event_id"]) for r in letters] == [("nasional", dead_id)]
    assert letters[0]["reason"].startswith("refused here: ") and reason in letters[0]["reason"]
    assert any(r.levelno == logging.ERROR and dead_id in r.getMessage() for r in caplog.records)
    assert _held(paser, [i for _, i in queued]) == {queued[1][1]}
    assert await engine.pull(HUB) == 0 and transport.pulls == [0, cursor]
    assert len(_pull_state(paser, hub)[2]) == 1


async def test_a_backlog_of_long_complaints_reaches_the_hub_in_batches_it_accepts(aiohttp_server, pair,
                                                                                  sample_complaints):
    """230 complaints of 19,500 characters make about 4.7 MB of events: 500 of them in one push were over
    what the hub reads (BATCH_MAX_BYTES). It refused the body before checking who sent it, with an answer
    kab-paser could not verify, and kab-paser backed off and sent the same batch again, for ever. Over
    loopback, to the real hub app, the backlog now arrives whole in batches under BATCH_EVENTS_MAX_BYTES."""
    from urllib.parse import urlsplit

    from adapters.http.app import build_app
    from adapters.hub_http import HttpTransport
    from node.federation import KeyDirectory
    from schemas.events import BATCH_EVENTS_MAX_BYTES, BATCH_MAX_BYTES

    district, hub = pair
    queued = _file_long_complaints(district, sample_complaints)
    assert sum(len(e.canonical_wire()) for _, e in queued) > BATCH_MAX_BYTES   # one batch of 500 was too big

    transport = HttpTransport(district.keys, KeyDirectory(district.storage, district.keys).resolve, attempts=1)
    sizes = []
    push = transport.push

    async def counted(peer, after, items):
        sizes.append(sum(len(e.canonical_wire()) for _, e in items))
        return await push(peer, after, items)
    transport.push = counted
    hub_server = await aiohttp_server(build_app(hub), port=urlsplit(district.settings.hub.url).port)
    try:
        sent = await SyncEngine(district, transport, receiver=None).drain(
            Peer("nasional", district.settings.hub.url))
    finally:
        await transport.close()
        await hub_server.close()
    assert sent == len(queued) == 230
    assert len(sizes) >= 2 and max(sizes) <= BATCH_EVENTS_MAX_BYTES
    with hub.storage.read() as tx:
        assert len(tx.stored_raw([e.id for _, e in queued])) == 230


def _file_long_complaints(node, sample_complaints, n=230) -> list:
    """File ``n`` complaints of 19,500 characters (about 20 KB of event each) at ``node``; what it queued for
    the hub."""
    from schemas.complaints import ComplaintIn
    long_text = ("Jalan poros desa rusak berat, berlubang dan tergenang setiap hujan turun. " * 270)[:19_500]
    for i in range(n):
        node.complaints.file(ComplaintIn.model_validate(
            dict(sample_complaints[i % 10], body=long_text, title=f"Jalan rusak {i}")))
    with node.storage.read() as tx:
        return tx.outbox_batch("nasional", 0, 500)


async def test_a_pull_of_long_complaints_comes_in_answers_under_the_limit_until_all_is_there(
        aiohttp_server, pair, sample_complaints):
    """The hub pulls kab-paser's queue of 230 long complaints from the real district app over loopback. Each
    answer stops at BATCH_EVENTS_MAX_BYTES of events (it held all 4.7 MB before) and says so (``more``),
    and the puller asks again at once, as after a full answer: all arrive in one pull round."""
    from adapters.http.app import build_app
    from adapters.hub_http import HttpTransport
    from node.federation import KeyDirectory, Receiver
    from node.reactions import hub_react
    from schemas.events import BATCH_EVENTS_MAX_BYTES

    district, hub = pair
    queued = _file_long_complaints(district, sample_complaints)
    app = build_app(district)
    server = await aiohttp_server(app)
    app["sync"].chain.confirmed = True   # (as once it has reached its hub: node.chain)
    transport = HttpTransport(hub.keys, KeyDirectory(hub.storage, hub.keys).resolve, attempts=1)
    answers = []
    pull = transport.pull

    async def counted(peer, after, limit):
        result = await pull(peer, after, limit)
        answers.append(sum(len(orjson.dumps(event)) for _, event in result.items))
        return result
    transport.pull = counted
    engine = SyncEngine(hub, transport, Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub)))
    try:
        got = await engine.pull(Peer("kab-paser", str(server.make_url("")).rstrip("/")))
    finally:
        await transport.close()
        await server.close()
    assert got == len(queued) == 230
    assert len(answers) >= 2 and max(answers) <= BATCH_EVENTS_MAX_BYTES


def test_events_refused_as_stamped_too_far_ahead_are_replayed_once_they_no_longer_are(make_node, tmp_path,
                                                                                      sample_complaints,
                                                                                      monkeypatch):
    """A clock that ran two hours ahead, then set back: the hub refused what the node signed meanwhile, and it
    stayed dead-lettered until an operator replayed it. Now it is replayed once its stamp is within the
    window; a dead letter refused for another reason is left to the operator."""
    from node.clock import wall_ms_now
    from schemas.complaints import ComplaintIn
    node = make_node(tmp_path)
    other = node.complaints.file(ComplaintIn.model_validate(sample_complaints[1])).state.ticket_id
    ahead_ms = 2 * 3600 * 1000
    node.clock._wall = lambda: wall_ms_now() + ahead_ms
    skewed = node.complaints.file(ComplaintIn.model_validate(sample_complaints[0])).state.ticket_id
    with node.storage.transaction() as tx:
        [skewed_id] = [e.id for e in tx.ticket_events(skewed)]
        [other_id] = [e.id for e in tx.ticket_events(other)]
        tx.add_dead_letters("nasional", [(other_id, "unknown institution"),
                                         (skewed_id, "its clock is more than 10 minutes ahead of this node's")],
                            now=time.time())
    monkeypatch.setattr("node.sync.CLOCK_PAGE", 1)   # (the list is read a page at a time: this one is second)
    later = time.time()
    engine = SyncEngine(node, NoTransport(), None, now=lambda: later)
    assert engine.replay_clock_refusals() == 0                       # still ahead
    later = time.time() + ahead_ms / 1000
    assert engine.replay_clock_refusals() == 1 and engine.replay_clock_refusals() == 0
    with node.storage.read() as tx:
        waiting = {r["event_id"] for r in tx.dead_letters()}
    assert waiting == {other_id}
