"""The hub's Receiver on real databases (a district and a hub set up by the real CLI, run in-process).

With two pushes in flight, a hub may apply a district's second batch before its first. The cursor (how far
the hub holds the district's queue, where its pulls start) must then wait for the first and move over both.
"""
import os
import signal

import orjson
import pytest

from node.cluster import Cluster
from node.config import load_settings
from node.core import Node
from node.federation import KeyDirectory, Receiver
from node.reactions import hub_react
from node.verify import verify_log
from schemas.complaints import ComplaintIn


@pytest.fixture(params=["database-thread", "worker-process"])
def checked(request, monkeypatch):
    """``receive(receiver, sender, after, batch)`` with the batch's checks on the database thread, or in the
    worker process, as a hub's large push (node.check_worker): the outcome must be the same."""
    def receive(receiver, sender, after, batch):
        if request.param == "database-thread":
            return receiver.receive(sender, after, batch)
        monkeypatch.setattr("node.federation.WORKER_FROM", 1)
        started = receiver.start(sender, orjson.dumps({"after": after, "items": batch}), batch)
        assert started is not None
        monkeypatch.setattr(receiver, "check_items", lambda *a: pytest.fail("checked on the database thread, "
                                                                            "not in the worker"))
        try:
            return receiver.receive(sender, after, batch, started)
        finally:
            receiver.worker.close()
    return receive


def _queued(district, bodies) -> list[dict]:
    for body in bodies:
        district.complaints.file(ComplaintIn.model_validate(body))
    with district.storage.read() as tx:
        return [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch("nasional", 0, 100)]


def test_batches_applied_out_of_order_move_the_cursor_once_the_gap_is_filled(pair, sample_complaints):
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:6])
    first, second = items[:3], items[3:]
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))

    early = receiver.receive("kab-paser", first[-1]["pos"], second)
    assert (early.accepted, early.cursor) == (3, 0)          # stored, but the first batch is still missing
    late = receiver.receive("kab-paser", 0, first)
    assert (late.accepted, late.cursor) == (3, items[-1]["pos"])
    with hub.storage.read() as tx:
        assert tx.peer("kab-paser")["cursor"] == items[-1]["pos"]
        assert len(tx.existing_event_ids(i["event"]["id"] for i in items)) == 6


def test_a_batch_that_failed_to_store_is_not_passed_over(pair, sample_complaints, monkeypatch):
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:4])
    first, second = items[:2], items[2:]
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))

    def broken(tx, states, fresh):
        raise RuntimeError("disk full")
    receiver.react = broken
    with pytest.raises(RuntimeError):
        receiver.receive("kab-paser", first[-1]["pos"], second)   # rolled back: nothing of it is held
    receiver.react = hub_react(hub)
    assert receiver.receive("kab-paser", 0, first).cursor == first[-1]["pos"]
    with hub.storage.read() as tx:
        assert not tx.existing_event_ids(i["event"]["id"] for i in second)


def test_a_batch_that_overlaps_the_one_before_it_keeps_its_outcome(pair, sample_complaints, checked):
    """Two pushes in flight, or a batch sent again after a lost answer, carry some events twice. The
    outcome must not change: a forged event is still refused, and an event the batch ahead carried too is
    stored once."""
    district, hub = pair
    bodies = [dict(b, title=f"{b['title']} ({i})") for i, b in enumerate(sample_complaints * 2)][:70]
    items = _queued(district, bodies)
    ahead, batch = items[:4], [dict(i) for i in items[3:]]          # items[3] travels in both
    batch[10] = {"pos": batch[10]["pos"], "event": {**batch[10]["event"],
                                                    "payload": {**batch[10]["event"]["payload"], "title": "palsu"}}}
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    assert receiver.receive("kab-paser", 0, ahead).accepted == 4
    got = checked(receiver, "kab-paser", ahead[-1]["pos"], batch)
    assert [i for i, _ in got.rejected] == [batch[10]["event"]["id"]]
    assert (got.accepted, got.duplicates) == (len(batch) - 2, 1)
    assert got.cursor == items[-1]["pos"]
    with hub.storage.read() as tx:
        assert tx.count_events() >= len(items) - 1
        assert not tx.existing_event_ids([batch[10]["event"]["id"]])


def test_a_push_whose_worker_died_is_checked_on_the_database_thread(pair, sample_complaints, monkeypatch, caplog):
    """The worker process killed (the OOM killer, say) while a push waits for it: the push is checked here
    instead, with the same outcome, and the next push starts another worker."""
    district, hub = pair
    monkeypatch.setattr("node.federation.WORKER_FROM", 1)
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:4])
    forged = {**items[1], "event": {**items[1]["event"], "payload": {**items[1]["event"]["payload"], "title": "x"}}}
    batch = [items[0], forged, *items[2:]]
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    try:
        first = receiver.worker.submit(os.getpid).result(timeout=60)
        os.kill(first, signal.SIGKILL)
        started = receiver.start("kab-paser", orjson.dumps({"after": 0, "items": batch}), batch)
        got = receiver.receive("kab-paser", 0, batch, started)
        assert [i for i, _ in got.rejected] == [forged["event"]["id"]]
        assert got.accepted == len(batch) - 1
        assert "check worker process failed" in caplog.text
        assert receiver.worker.submit(os.getpid).result(timeout=60) not in (None, first)
    finally:
        receiver.worker.close()


def test_a_worker_answer_that_is_not_the_batch_it_was_given_is_checked_on_the_database_thread(
        pair, sample_complaints, monkeypatch, caplog):
    """The database thread takes each checked event's fields from the item the event loop parsed, in the
    worker's order: an answer of another length cannot be matched to the items, so the batch is checked
    here instead."""
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:3])
    forged = {**items[1], "event": {**items[1]["event"], "payload": {**items[1]["event"]["payload"], "title": "x"}}}
    batch = [items[0], forged, items[2]]
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    answer = receiver.worker.answer
    monkeypatch.setattr(receiver.worker, "answer", lambda *a: answer(*a)[1:])
    monkeypatch.setattr("node.federation.WORKER_FROM", 1)
    try:
        started = receiver.start("kab-paser", orjson.dumps({"after": 0, "items": batch}), batch)
        got = receiver.receive("kab-paser", 0, batch, started)
    finally:
        receiver.worker.close()
    assert [i for i, _ in got.rejected] == [forged["event"]["id"]] and got.accepted == 2
    assert "answered 2 items of a push of 3" in caplog.text


def test_a_push_whose_worker_hangs_is_checked_on_the_database_thread(pair, sample_complaints, monkeypatch, caplog):
    """A worker that does not answer (stopped, say) holds a push for ``check_worker.WAIT_S`` at most: it is
    then checked here, and the worker is replaced."""
    district, hub = pair
    monkeypatch.setattr("node.federation.WORKER_FROM", 1)
    monkeypatch.setattr("node.check_worker.WAIT_S", 2.0)
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:3])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    stopped = receiver.worker.submit(os.getpid).result(timeout=60)
    try:
        os.kill(stopped, signal.SIGSTOP)
        started = receiver.start("kab-paser", orjson.dumps({"after": 0, "items": items}), items)
        got = receiver.receive("kab-paser", 0, items, started)
        assert (got.accepted, got.rejected) == (len(items), ())
        assert "check worker process failed" in caplog.text
        assert receiver.worker.submit(os.getpid).result(timeout=60) != stopped
    finally:
        receiver.worker.close()
        try:
            os.kill(stopped, signal.SIGKILL)
        except ProcessLookupError:   # (killed by the receiver already)
            pass


@pytest.mark.parametrize("items, keys", [(63, 1), (64, 5)])
def test_a_small_push_or_one_naming_many_keys_is_checked_on_the_database_thread(pair, items, keys):
    """Only a large batch is worth the trip to the worker; and resolving many keys would read the directory on
    the event loop, so a batch naming more than a district's few goes to the database thread."""
    from node.federation import WORKER_FROM, WORKER_KEYS
    assert (items, keys) in ((WORKER_FROM - 1, 1), (WORKER_FROM, WORKER_KEYS + 1))
    district, hub = pair
    batch = [{"pos": i, "event": {"key": f"kab-paser#sig-{i % keys}"}} for i in range(items)]
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    assert receiver.start("kab-paser", orjson.dumps({"after": 0, "items": batch}), batch) is None
    assert receiver.worker._pool is None


def test_the_worker_exits_when_its_node_is_killed(tmp_path):
    """Nothing else would stop it: the node SIGKILLed (or OOM-killed) leaves no worker behind."""
    import subprocess
    import sys
    import time
    script = ("import os, sys, time\nfrom node.check_worker import CheckWorker\n"
              "w = CheckWorker()\nprint(w.submit(os.getpid).result(timeout=60), flush=True)\ntime.sleep(120)\n")
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        worker = int(node.stdout.readline())
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)
        for _ in range(100):
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            _reap(worker)
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived its node")
    finally:
        node.kill()


def _reap(pid: int) -> None:
    """(An orphan is reaped by init; here, if this test process adopted it as a subreaper, by us.)"""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _forged(district, items, case: str, seq: int = 1000) -> dict:
    """An event the district really signed, but which breaks one receive rule (``case``)."""
    import time
    import uuid
    from node.clock import MAX_AHEAD_MS, format_hlc
    from schemas.events import make_event
    created = next(i["event"] for i in items if i["event"]["type"] == "created")
    now_ms = int(time.time() * 1000)
    fields = dict(ticket=uuid.uuid4().hex, author="kab-paser", seq=seq, prev=None, parents=[],
                  hlc=format_hlc(now_ms, 0), type="created", payload=dict(created["payload"]))
    if case == "clock-far-ahead":
        fields["hlc"] = format_hlc(now_ms + MAX_AHEAD_MS + 60_000, 0)
    elif case == "clock-ahead":   # within the bound: a district whose clock runs a few minutes fast
        fields["hlc"] = format_hlc(now_ms + 5 * 60_000, 0)
    elif case == "clock-malformed":
        fields["hlc"] = "00000000000001x.00001"
    elif case == "created-without-tracking-id":
        del fields["payload"]["tracking_id"]
    elif case == "second-created":  # a back-dated origin for a ticket that exists
        fields.update(ticket=created["ticket"], hlc=format_hlc(1, 0))
    elif case == "another-hub":      # (the hub's own routing then failed, and a matching rule failed the batch)
        fields["payload"]["hub"] = "kab-paser"
    elif case == "chosen-institution-a-list":   # (routing raised on the whole batch)
        fields["payload"]["chosen_institution"] = ["paser-disdikbud"]
    elif case == "chain-broken":     # the next of the author's seqs, its prev not the event before it
        fields.update(seq=max(i["event"]["seq"] for i in items) + 1, prev="0" * 64)
    elif case == "routed-elsewhere-by-a-district":   # its own ticket, to another node's office
        fields.update(ticket=created["ticket"], type="routed", parents=[created["id"]],
                      payload={"institution": "ppu-disdukcapil", "node": "kab-paser", "reason": "manual"})
    elif case == "routed-to-another-node-by-a-district":   # its own office, named as another node's
        fields.update(ticket=created["ticket"], type="routed", parents=[created["id"]],
                      payload={"institution": "paser-disdikbud", "node": "kab-ppu", "reason": "manual"})
    wire = make_event(**fields, key_id=district.keys.signing_key_id, private_key=district.keys.signing_key).to_wire()
    if case == "a-number-past-2**53":    # (no key signs these: canonical JSON cannot hold them. An unsigned 500)
        wire["payload"]["nilai"] = 2**60
    elif case == "seq-past-2**53":
        wire["seq"] = 2**60
    return wire


@pytest.mark.parametrize("case, reason", [
    ("clock-far-ahead", "ahead of this node's"), ("clock-malformed", "hlc"),
    ("created-without-tracking-id", "tracking_id"), ("second-created", "already has its created event"),
    ("seq-taken-in-batch", "equivocation"), ("another-hub", "names kab-paser as its hub"),
    ("chosen-institution-a-list", "chosen_institution"), ("a-number-past-2**53", "no canonical form"),
    ("seq-past-2**53", "seq"), ("chain-broken", "chain broken"),
    ("routed-elsewhere-by-a-district", "not an institution it hosts"),
    ("routed-to-another-node-by-a-district", "not an institution it hosts")])
def test_an_event_breaking_a_rule_is_refused_alone(pair, sample_complaints, case, reason, checked):
    """Each forgery is signed by the sender itself, so only the rule refuses it: the rest of its batch is
    stored, the sender learns why, and the hub's clock does not follow a clock far ahead of its own."""
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:3])
    forged = _forged(district, items, case)
    batch = items + [{"pos": items[-1]["pos"] + 1, "event": forged}]
    if case == "seq-taken-in-batch":    # another event (another ticket) claims the same seq first
        batch.insert(-1, {"pos": items[-1]["pos"] + 1, "event": _forged(district, items, "another", seq=1000)})
        batch[-1] = {"pos": items[-1]["pos"] + 2, "event": forged}
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    result = checked(receiver, "kab-paser", 0, batch)
    assert [i for i, _ in result.rejected] == [forged["id"]]
    assert reason in result.rejected[0][1]
    assert result.accepted == len(batch) - 1
    with hub.storage.read() as tx:
        assert not tx.existing_event_ids([forged["id"]])
        assert tx.peer("kab-paser")["cursor"] == batch[-1]["pos"]
        if case == "second-created":
            assert tx.get_ticket(forged["ticket"]).origin == "kab-paser"
            assert tx.get_ticket(forged["ticket"]).title == items[0]["event"]["payload"]["title"]
    assert hub.clock.tick() < _forged(district, items, "clock-far-ahead")["hlc"]


def test_an_event_is_later_than_its_parents_even_from_another_process(tmp_path, sample_dir, sample_complaints):
    """Two processes of one hub share its database. The one that did not receive a ticket still signs its
    events on it later than the ticket's own (a clock a few minutes fast at the district included), or
    the fold would apply them before the ticket exists and drop them."""
    from schemas.complaints import ActionIn
    cluster = Cluster(tmp_path, sample_dir / "federation.json", node_ids=["kab-paser"]).init()
    district, hub_a, hub_b = (Node(load_settings(cluster.proc(n).config)) for n in ("kab-paser", "nasional", "nasional"))
    try:
        items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:1])
        ahead = _forged(district, items, "clock-ahead")
        receiver = Receiver(hub_a, KeyDirectory(hub_a.storage, hub_a.keys), lambda tx, states, fresh: None)
        assert receiver.receive("kab-paser", 0, [{"pos": items[-1]["pos"] + 1, "event": ahead}]).accepted == 1
        state = hub_b.complaints.act(ahead["ticket"], ActionIn(action="route", institution="paser-disdikbud"),
                                     hub_b.institutions())
        assert state.institution == "paser-disdikbud" and state.event_count == 2
        with hub_b.storage.read() as tx:
            routed = [e for e in tx.ticket_events(ahead["ticket"]) if e.type == "routed"][0]
        assert routed.hlc > ahead["hlc"]
    finally:
        for node in (district, hub_a, hub_b):
            node.close()


def test_a_revoked_key_is_refused_within_the_cache_time(pair):
    """Revocation happens in another process (``simpul nodes revoke``) or another hub process: a running
    KeyDirectory must stop trusting the key once its entry is older than KEY_CACHE_S."""
    from node.federation import KEY_CACHE_S
    district, hub = pair
    now = [1000.0]
    keys = KeyDirectory(hub.storage, hub.keys, clock=lambda: now[0])
    key_id = district.keys.signing_key_id
    assert keys.lookup(key_id)[0] == "kab-paser"
    with hub.storage.transaction() as tx:
        tx.revoke_node("kab-paser")
    now[0] += KEY_CACHE_S / 2
    assert keys.lookup(key_id) is not None          # still cached
    now[0] += KEY_CACHE_S
    assert keys.lookup(key_id) is None and keys.resolve(key_id) is None


def test_serving_a_pull_moves_the_pullers_acked_checkpoint(pair, sample_complaints):
    """A peer that pulls after N holds everything up to N. A district the hub cannot push to (behind NAT)
    only ever pulls: unless its pulls move its ``acked`` here, the hub never prunes its queue and
    anti-entropy takes every event queued for it as still in flight, and never repairs them."""
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:3])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    receiver.receive("kab-paser", 0, items)               # routed at the hub: queued back for the district
    with hub.storage.read() as tx:
        queued = [pos for pos, _ in tx.outbox_batch("kab-paser", 0, 100)]
        assert len(queued) >= 2 and tx.peer("kab-paser")["acked"] == 0

    def acked() -> int:
        with hub.storage.read() as tx:
            return tx.peer("kab-paser")["acked"]
    assert [pos for pos, _ in receiver.outgoing("kab-paser", 0, 100)[0]] == queued
    assert acked() == 0
    receiver.outgoing("kab-paser", queued[0], 100)
    assert acked() == queued[0]
    with hub.storage.read() as tx:
        assert tx.in_flight("kab-paser", [e.id for _, e in tx.outbox_batch("kab-paser", 0, 1)]) == set()
    receiver.outgoing("kab-paser", 0, 100)                 # an older cursor never moves it back
    assert acked() == queued[0]
    receiver.outgoing("kab-paser", queued[-1] + 1000, 100)   # nor past what is queued for the peer
    assert acked() == queued[-1]


def test_a_batch_received_twice_leaves_one_inbox_row_per_event(pair, sample_complaints):
    """The inbox notes who delivered each event stored (design: an (origin, event id) row in the event's
    transaction). It has no key on that pair (migration 0005): a row is written only for an event stored
    fresh, so a retried push or a push and a pull crossing add none."""
    district, hub = pair
    items = _queued(district, sample_complaints[:3])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    first = receiver.receive("kab-paser", 0, items)
    again = receiver.receive("kab-paser", 0, items)
    assert (first.accepted, again.accepted, again.duplicates) == (len(items), 0, len(items))
    with hub.storage.read() as tx:
        assert tx.inbox_count("kab-paser") == tx.inbox_count() == len(items)


def test_a_receive_names_the_destinations_it_gave_work(pair, sample_complaints):
    """The push handler wakes only these loops (a hub has hundreds of peers, and each woken loop takes its
    lease in a write transaction): the holder and origin of the tickets the batch touched."""
    district, hub = pair
    body = next(b for b in sample_complaints if b["ref"] == "S002")   # kab-paser -> a hub-hosted institution
    items = _queued(district, [body])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    result = receiver.receive("kab-paser", 0, items)
    assert result.accepted == len(items)
    with hub.storage.read() as tx:
        queued = {d for d in ("kab-paser", "kab-ppu", "kota-balikpapan", "prov-kaltim")
                  if tx.outbox_last_id(d)}
    assert result.queued_for == queued == {"kab-paser"}      # the routing goes back to the origin only
    assert receiver.receive("kab-paser", 0, items).queued_for == frozenset()   # duplicates: no work


def test_routing_follows_a_rule_another_process_adds(pair, sample_complaints):
    """The hub keeps its routing topology between receives (TopologyCache) and reads it again when an
    institution or region was written since, by any process: here a second connection to its database,
    as ``simpul federation load`` would be."""
    from adapters.storage import SqlStorage
    district, hub = pair
    body = next(b for b in sample_complaints if not b.get("chosen_institution") and b.get("category"))
    unroutable = dict(body, category="lainnya", topic="kanal_baru", title="Kanal pengaduan baru (1)")
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    items = _queued(district, [unroutable])
    receiver.receive("kab-paser", 0, items)
    with hub.storage.read() as tx:
        assert tx.get_ticket(items[0]["event"]["ticket"]).institution is None   # no rule: the queue

    other = SqlStorage(hub.settings.db_url)   # another process's connection
    try:
        with other.transaction() as tx:
            tx.put_institution({"id": "kanal-baru", "name": "Unit Kanal Baru", "node_id": "nasional",
                                "region": None, "competences": ["lainnya/kanal_baru"],
                                "ppid": False})
    finally:
        other.dispose()
    later = _queued(district, [dict(unroutable, title="Kanal pengaduan baru (2)")])
    receiver.receive("kab-paser", items[-1]["pos"], [i for i in later if i["pos"] > items[-1]["pos"]])
    with hub.storage.read() as tx:
        assert tx.get_ticket(later[-1]["event"]["ticket"]).institution == "kanal-baru"


@pytest.mark.parametrize("pos", [True, 2**63, 2**31, -1, "1"])
def test_an_item_whose_position_is_not_a_position_is_refused_alone(pair, sample_complaints, pos):
    """Before, a position of true or past 2**63 failed the whole push with an unsigned 500."""
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:3])
    bad = {"pos": pos, "event": _forged(district, items, "another")}
    result = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub)).receive("kab-paser", 0,
                                                                                       items + [bad])
    assert result.accepted == len(items) and len(result.rejected) == 1 and "'pos'" in result.rejected[0][1]


def test_a_resolution_of_no_conflict_changes_nothing(pair, sample_complaints):
    """A district's conflict_resolved carrying a state, on a ticket with no conflict: before, the hub set
    the state it carried (closed, held by another node) and sent the history to that node."""
    from schemas.events import make_event
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:1])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    receiver.receive("kab-paser", 0, items)
    created = items[0]["event"]
    with hub.storage.read() as tx:
        before = tx.get_ticket(created["ticket"])
        heads = [e.id for e in tx.ticket_events(created["ticket"])]
    resolution = make_event(
        ticket=created["ticket"], author="kab-paser", seq=max(i["event"]["seq"] for i in items) + 1,
        prev=items[-1]["event"]["id"], parents=heads, hlc=hub.clock.tick(), type="conflict_resolved",
        payload={"conflict": "no-such-conflict", "winner": "merged", "reason": "x",
                 "state": {"status": "closed", "holder_node": "kab-ppu", "institution": "kemenpu-bpjn-kaltim"}},
        key_id=district.keys.signing_key_id, private_key=district.keys.signing_key).to_wire()
    result = receiver.receive("kab-paser", items[-1]["pos"], [{"pos": items[-1]["pos"] + 1, "event": resolution}])
    assert result.accepted == 1
    with hub.storage.read() as tx:
        after = tx.get_ticket(created["ticket"])
    assert (after.status, after.holder_node, after.institution) == (before.status, before.holder_node,
                                                                    before.institution)
    assert (resolution["id"], "it settles no conflict on this ticket") in after.ignored


def test_a_broken_chain_is_refused_when_its_later_event_arrived_first(pair, sample_complaints):
    """Two pushes answered out of order bring an author's seq n+1 before seq n. Before, n+1 was stored
    unchecked (n was not held yet), then n, and the hub held a broken chain that 'simpul verify' named."""
    from schemas.events import make_event
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:2])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    last = items[-1]["event"]
    n = last["seq"] + 1

    def follow_up(seq: int, prev: str) -> dict:
        return make_event(ticket=last["ticket"], author="kab-paser", seq=seq, prev=prev, parents=[last["id"]],
                          hlc=hub.clock.tick(), type="reporter_replied", payload={"text": f"balasan {seq}"},
                          key_id=district.keys.signing_key_id, private_key=district.keys.signing_key).to_wire()
    real = follow_up(n, last["id"])
    stray = follow_up(n + 1, "2" * 64)                   # names an event that is not seq n
    pos = items[-1]["pos"]
    assert receiver.receive("kab-paser", pos + 1, [{"pos": pos + 2, "event": stray}]).accepted == 1
    result = receiver.receive("kab-paser", 0, items + [{"pos": pos + 1, "event": real}])
    assert [i for i, _ in result.rejected] == [real["id"]] and "(held) follows" in result.rejected[0][1]
    assert verify_log(hub.storage, hub.keys).problems == []
    # (a later batch whose chain is whole, applied first, is taken: the out-of-order test above)


def test_an_event_that_follows_one_refused_in_the_same_batch_is_refused_too(pair, sample_complaints):
    """A district restored from an older backup signs its seqs again: the first is an equivocation, and the
    next, which follows it, was stored all the same: a gap in the author's chain here that nothing fills."""
    from schemas.events import make_event
    district, hub = pair
    items = _queued(district, [b for b in sample_complaints if b.get("reporter")][:2])
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    assert receiver.receive("kab-paser", 0, items).accepted == 2
    last = items[-1]["event"]

    def reply(seq: int, prev: str, text: str) -> dict:
        return make_event(ticket=last["ticket"], author="kab-paser", seq=seq, prev=prev, parents=[last["id"]],
                          hlc=hub.clock.tick(), type="reporter_replied", payload={"text": text},
                          key_id=district.keys.signing_key_id, private_key=district.keys.signing_key).to_wire()
    again = reply(last["seq"], items[-2]["event"]["id"], "ditandatangani lagi")     # the restored node's seq n
    after = reply(last["seq"] + 1, again["id"], "berikutnya")                      # n+1: must follow the held n
    then = reply(last["seq"] + 2, after["id"], "lalu")                              # n+2: was stored, after a gap
    pos = items[-1]["pos"]
    result = receiver.receive("kab-paser", pos, [{"pos": pos + i + 1, "event": e}
                                                 for i, e in enumerate((again, after, then))])
    assert [i for i, _ in result.rejected] == [again["id"], after["id"], then["id"]]
    assert [r.split(":")[0] for _, r in result.rejected] == ["equivocation", "chain broken", "chain broken"]
    assert "which it follows, was refused" in result.rejected[2][1]
    assert verify_log(hub.storage, hub.keys).problems == []


def test_a_node_whose_last_event_is_stamped_ahead_of_its_clock_says_so_at_start(make_node, tmp_path,
                                                                               sample_complaints, caplog):
    """A clock that ran two hours ahead, then set back (a server that booted before NTP): the node goes on
    stamping from its last event, and the hub refuses what it signs. Before, nothing said why."""
    from node.clock import wall_ms_now
    node = make_node(tmp_path)
    node.clock._wall = lambda: wall_ms_now() + 2 * 3600 * 1000
    node.complaints.file(ComplaintIn.model_validate(
        {k: v for k, v in sample_complaints[0].items() if k != "ref"}))
    restarted = Node(node.settings)
    try:
        assert "stamped 119 minutes ahead of its clock" in caplog.text or "stamped 120 minutes" in caplog.text
    finally:
        restarted.close()
