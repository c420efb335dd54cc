"""The hub's side of anti-entropy on real databases (a hub and two districts set up by the real CLI, run
in-process): what a district may read through a digest request, and what a district does with a repair
it refuses.

The pass between real node processes, with a deleted event brought back, is in
tests/acceptance/test_reconciliation.py.
"""
import logging

import pytest

from adapters.transport import Peer
from node.anti_entropy import AntiEntropy
from node.cluster import Cluster
from node.config import load_settings
from node.core import Node
from node.federation import KeyDirectory, Receiver
from node.identity import IdentityService
from node.reactions import district_react, hub_react
from node.sync import replay_dead_letters
from schemas.complaints import ComplaintIn

HUB, PASER, PPU = "nasional", "kab-paser", "kab-ppu"


@pytest.fixture
def federation(tmp_path, sample_dir, sample_complaints):
    """The hub holding three routed tickets: S009 (rahasia, filed at and held by kab-paser), S021 (filed at
    and held by kab-ppu) and S024 (filed at kab-ppu, held by kab-paser). Yields (hub, {ref: ticket id})."""
    cluster = Cluster(tmp_path, sample_dir / "federation.json", node_ids=[PASER, PPU]).init()
    nodes = {n: Node(load_settings(cluster.proc(n).config)) for n in (HUB, PASER, PPU)}
    hub = nodes[HUB]
    bodies = {b["ref"]: b for b in sample_complaints}
    receiver = Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub))
    tickets = {}
    for district, refs in ((PASER, ["S009"]), (PPU, ["S021", "S024"])):
        for ref in refs:
            tickets[ref] = nodes[district].complaints.file(ComplaintIn.model_validate(bodies[ref])).state.ticket_id
        with nodes[district].storage.read() as tx:
            items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch(HUB, 0, 100)]
        assert receiver.receive(district, 0, items).accepted == len(items)
    with hub.storage.transaction() as tx:   # the districts have acknowledged what the hub sent them
        for district in (PASER, PPU):
            tx.advance_peer(district, acked=tx.outbox_last_id(district))
    with hub.storage.read() as tx:
        held = {ref: (tx.get_ticket(t).origin, tx.get_ticket(t).holder_node) for ref, t in tickets.items()}
    assert held == {"S009": (PASER, PASER), "S021": (PPU, PPU), "S024": (PPU, PASER)}
    yield hub, tickets
    for node in nodes.values():
        node.close()


def _events_by_ticket(answer: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in answer["events"]:
        out.setdefault(e["ticket"], []).append(e)
    return out


@pytest.mark.parametrize("sender, readable", [(PPU, {"S021", "S024"}), (PASER, {"S009", "S024"})])
async def test_a_diff_gives_only_the_tickets_a_node_filed_or_holds(federation, caplog, sender, readable):
    """A diff naming every ticket gets the events of the sender's own tickets (filed or held there, the same
    tickets as its list) and nothing of the others: no rahasia report of another district by naming it."""
    hub, tickets = federation
    anti_entropy = AntiEntropy(hub, transport=None, receiver=None, sync=None)
    listed = await anti_entropy.answer(sender, {"op": "list", "after": ""})
    assert {t for t, _ in listed["tickets"]} == {tickets[r] for r in readable}

    with caplog.at_level(logging.WARNING, logger="node.anti_entropy"):
        answer = await anti_entropy.answer(sender, {"op": "diff", "tickets": {t: [] for t in tickets.values()}})
    got = _events_by_ticket(answer)
    assert set(got) == {tickets[r] for r in readable}
    with hub.storage.read() as tx:
        for ref in readable:
            assert sorted(e["id"] for e in got[tickets[ref]]) == sorted(e.id for e in tx.ticket_events(tickets[ref]))
    assert answer["missing_here"] == []
    (other,) = set(tickets) - readable
    assert tickets[other] in caplog.text and sender in caplog.text


async def test_a_diff_still_says_which_of_the_senders_events_the_hub_lacks(federation):
    """For a ticket it may not read, the sender still learns which of the ids it sent are missing at the hub
    (so that an honest district whose ticket moved away still repairs what it authored), but no event."""
    hub, tickets = federation
    anti_entropy = AntiEntropy(hub, transport=None, receiver=None, sync=None)
    with hub.storage.read() as tx:
        known = tx.ticket_events(tickets["S009"])[0].id
    answer = await anti_entropy.answer(PPU, {"op": "diff", "tickets": {tickets["S009"]: [known, "f" * 64]}})
    assert answer == {"events": [], "missing_here": ["f" * 64]}


async def test_the_hub_records_a_pass_that_has_nothing_to_repair(federation):
    """Its console shows when each district last compared with it, not only when something was repaired."""
    hub, _ = federation
    anti_entropy = AntiEntropy(hub, transport=None, receiver=None, sync=None, now=lambda: 1234.5)
    with hub.storage.read() as tx:
        assert tx.peer(PPU)["anti_entropy_at"] is None
    await anti_entropy.answer(PPU, {"op": "list", "after": ""})
    with hub.storage.read() as tx:
        assert (tx.peer(PPU)["anti_entropy_at"], tx.peer(PPU)["repairs"]) == (1234.5, 0)


@pytest.mark.parametrize("tickets", [{"t": 5}, {"t": "abc"}, {"t": [1]}, ["t"]])
async def test_a_malformed_diff_is_refused(federation, tickets):
    from node.errors import ValidationError
    hub, _ = federation
    anti_entropy = AntiEntropy(hub, transport=None, receiver=None, sync=None)
    with pytest.raises(ValidationError, match="event id lists"):
        await anti_entropy.answer(PPU, {"op": "diff", "tickets": tickets})


class _Answering:
    """The district's transport for anti-entropy: the hub's own answers, in-process."""

    def __init__(self, hub, district):
        self.hub, self.district = hub, district

    async def digests(self, peer, request):
        return await AntiEntropy(self.hub, None, None, None).answer(self.district, request)


class _Sync:
    chain = None   # (no chain check: node.chain's tests have theirs)

    def wake(self, dest=None):
        pass


@pytest.fixture
def unsent_routing(tmp_path, sample_dir, sample_complaints):
    """kab-ppu's ticket S024 at the hub, routed there to kab-paser, and the hub's routing event never sent to
    kab-ppu (nor in flight any more). Yields (hub, kab-ppu, ticket id, the routing event, kab-ppu's pass)."""
    cluster = Cluster(tmp_path, sample_dir / "federation.json", node_ids=[PASER, PPU]).init()
    hub, ppu = (Node(load_settings(cluster.proc(n).config)) for n in (HUB, PPU))
    body = next(b for b in sample_complaints if b["ref"] == "S024")
    ticket = ppu.complaints.file(ComplaintIn.model_validate(body)).state.ticket_id
    with ppu.storage.transaction() as tx:
        items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch(HUB, 0, 100)]
        tx.advance_peer(HUB, acked=tx.outbox_last_id(HUB))
    Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub)).receive(PPU, 0, items)
    with hub.storage.transaction() as tx:
        tx.advance_peer(PPU, acked=tx.outbox_last_id(PPU))
        (routed,) = [e for e in tx.ticket_events(ticket) if e.author == HUB]
    receiver = Receiver(ppu, KeyDirectory(ppu.storage, ppu.keys), district_react(ppu, IdentityService(ppu)))
    yield hub, ppu, ticket, routed, AntiEntropy(ppu, _Answering(hub, PPU), receiver, _Sync())
    hub.close()
    ppu.close()


HUB_PEER = Peer(HUB, "http://127.0.0.1:9")


def _dead_letters(node) -> list[tuple[str, str, str]]:
    with node.storage.read() as tx:
        return [(d["dest"], d["event_id"], d["reason"][:len("refused here")]) for d in tx.dead_letters()]


def _holds(node, ticket, event_id) -> bool:
    with node.storage.read() as tx:
        return event_id in {e.id for e in tx.ticket_events(ticket)}


async def test_a_repair_refused_here_is_dead_lettered_once_and_checked_again_after_a_replay(unsent_routing, caplog):
    """The hub offers kab-ppu its routing of S024 with a signature that does not verify (its stored copy
    damaged). kab-ppu refuses it, and it goes to kab-ppu's dead-letter list under the hub's name (it was only
    logged, and checked and logged again on every pass). Later passes skip it while it is listed; once an
    admin replays the dead letter, the next pass checks it again."""
    hub, ppu, ticket, routed, repair = unsent_routing
    sig = routed.sig
    damaged = routed.canonical_wire().replace(sig, ("A" if sig[0] != "A" else "B") + sig[1:])
    with hub.storage.transaction() as tx:
        tx.conn.exec_driver_sql("UPDATE events SET raw = ? WHERE id = ?", (damaged, routed.id))
    for rounds in (1, 2):
        with caplog.at_level(logging.WARNING, logger="node.federation"):
            await repair.run(HUB_PEER)
        assert caplog.text.count(f"rejected event {routed.id}") == 1, rounds
        assert _dead_letters(ppu) == [(HUB, routed.id, "refused here")]
    assert not _holds(ppu, ticket, routed.id)
    assert replay_dead_letters(ppu.storage) == 1
    await repair.run(HUB_PEER)
    assert caplog.text.count(f"rejected event {routed.id}") == 2
    assert _dead_letters(ppu) == [(HUB, routed.id, "refused here")]   # (the replayed one is off the list)


async def test_a_repair_signed_with_a_key_not_known_here_waits_instead_of_being_refused(unsent_routing):
    """A key kab-ppu does not know yet (until its next directory refresh) may still be good: the event is
    neither refused nor dead-lettered, and a later pass, once the key is known, applies it."""
    hub, ppu, ticket, routed, repair = unsent_routing
    with ppu.storage.transaction() as tx:
        row = tx.conn.exec_driver_sql("SELECT * FROM node_keys WHERE key_id = ?", (routed.key,)).mappings().one()
        tx.conn.exec_driver_sql("DELETE FROM node_keys WHERE key_id = ?", (routed.key,))
    await repair.run(HUB_PEER)
    assert not _holds(ppu, ticket, routed.id) and _dead_letters(ppu) == []
    with ppu.storage.transaction() as tx:   # (what the directory refresh brings back)
        columns = ", ".join(row)
        tx.conn.exec_driver_sql(f"INSERT INTO node_keys ({columns}) VALUES ({', '.join('?' * len(row))})",
                                tuple(row.values()))
    await repair.run(HUB_PEER)
    assert _holds(ppu, ticket, routed.id) and _dead_letters(ppu) == []


async def test_offered_events_without_an_id_are_ignored_and_the_rest_applied(unsent_routing, monkeypatch, caplog):
    """A broken answer (an event that is not an object, or has no string id) has nothing to be refused by,
    once: it is ignored with a warning, the pass goes on, and the good event in it is applied."""
    hub, ppu, ticket, routed, repair = unsent_routing
    answer = AntiEntropy.answer

    async def broken(self, sender, request):
        out = await answer(self, sender, request)
        if out.get("events"):
            out["events"] += ["junk", {"id": ["not", "a", "string"]}]
        return out
    monkeypatch.setattr(AntiEntropy, "answer", broken)
    with caplog.at_level(logging.WARNING, logger="node.anti_entropy"):
        await repair.run(HUB_PEER)
    assert "2 offered event(s) without an id ignored" in caplog.text
    assert _holds(ppu, ticket, routed.id) and _dead_letters(ppu) == []


@pytest.mark.parametrize("body", [b"not json", b"", b"\xff\xfe"])
async def test_a_digest_request_that_is_not_json_is_a_signed_422(pair, aiohttp_client, signed_post, body):
    """Before, the hub parsed it with json.loads unguarded: an unsigned 500 and a traceback."""
    from adapters.http.app import build_app
    district, hub = pair
    resp = await signed_post(await aiohttp_client(build_app(hub)), district, "/federation/v1/digests", body)
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    assert "not valid JSON" in (await resp.json())["detail"]
    assert "Signature" in resp.headers and "Signature-Input" in resp.headers
