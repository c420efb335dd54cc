"""The hub's side of anti-entropy on real databases (a hub and two districts set up by the real CLI, run
in-process): what a district may read through a digest request.

The pass between real node processes, with a deleted event brought back, is in
tests/acceptance/test_reconciliation.py.
"""
import logging

import pytest

from node.anti_entropy import AntiEntropy
from node.cluster import Cluster
from node.config import load_settings
from node.core import Node
from node.federation import KeyDirectory, Receiver
from node.reactions import hub_react
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


@pytest.mark.parametrize("tickets", [{"t": 5}, {"t": "abc"}, {"t": [1]}, ["t"]])
async def test_a_malformed_diff_is_refused(federation, tickets):
    from node.errors import ValidationError
    hub, _ = federation
    anti_entropy = AntiEntropy(hub, transport=None, receiver=None, sync=None)
    with pytest.raises(ValidationError, match="event id lists"):
        await anti_entropy.answer(PPU, {"op": "diff", "tickets": tickets})
