"""Unit tests for node.ticket: the fold is pure and order-independent; heads()."""
from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from node.lifecycle import Status
from node.ticket import fold, heads
from schemas.events import make_event

KEY = Ed25519PrivateKey.generate()
CREATED = {"tracking_id": "KAB-PASER-2610-00001", "type": "pengaduan", "category": "pendidikan", "topic": "smp",
           "region": "6401", "kecamatan": "Tanah Grogot", "title": "Pungutan seragam di SMP negeri",
           "body": "Sekolah meminta Rp750.000 untuk seragam.", "incident_date": "2026-10-06", "anonim": False,
           "rahasia": False, "channel": "web", "chosen_institution": None, "filed_at": "2026-10-07T01:02:03Z",
           "hub": "nasional"}


class Builder:
    """Authors events the way EventLog does: per-author chains, parents = current heads."""

    def __init__(self):
        self.events = []
        self.chain: dict[str, tuple[int, str | None]] = {}

    def add(self, author, type, at, payload=None, parents=None):
        seq, prev = self.chain.get(author, (0, None))
        e = make_event(ticket="t1", author=author, seq=seq + 1, prev=prev,
                       parents=heads(self.events) if parents is None else parents,
                       hlc=f"{at:016d}.0000", type=type, payload=payload or {}, key_id=f"{author}#sig-1",
                       private_key=KEY)
        self.chain[author] = (e.seq, e.id)
        self.events.append(e)
        return e


def lifecycle_events():
    b = Builder()
    c = b.add("kab-paser", "created", 1000, CREATED)
    b.add("nasional", "verified", 2000)
    b.add("nasional", "routed", 3000, {"institution": "paser-disdikbud", "node": "kab-paser"})
    b.add("kab-paser", "accepted", 4000)
    b.add("kab-paser", "followed_up", 5000, {"text": "Pungutan dihentikan."})
    # concurrent, both after the follow-up: the reporter answers (origin), the hub edits (too late: ignored)
    fork = heads(b.events)
    b.add("kab-paser", "reporter_replied", 6000, {"text": "Terima kasih"}, parents=fork)
    b.add("nasional", "edited", 6000, {"title": "Pungutan seragam"}, parents=fork)  # not allowed: ignored
    b.add("kab-paser", "closed", 7000)
    b.add("kab-paser", "reopened", 8000)
    b.add("kab-paser", "followed_up", 9000, {"text": "Kuitansi resmi diberikan."})
    return c, b.events


def test_fold_of_a_lifecycle():
    created, events = lifecycle_events()
    state = fold(events)
    assert state.ticket_id == "t1" and state.origin == "kab-paser"
    assert state.status is Status.FOLLOWED_UP
    assert state.institution == "paser-disdikbud" and state.holder_node == "kab-paser"
    assert [f["text"] for f in state.followups] == ["Pungutan dihentikan.", "Kuitansi resmi diberikan."]
    assert [r["text"] for r in state.replies] == ["Terima kasih"]
    assert state.title == CREATED["title"]  # the late edit was ignored
    assert len(state.ignored) == 1 and "edited" in state.ignored[0][1]
    assert state.event_count == len(events)
    assert state.last_hlc == max(e.hlc for e in events)


@pytest.mark.parametrize("seed", range(25))
def test_fold_is_order_independent(seed):
    _, events = lifecycle_events()
    expected = fold(events)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    got = fold(shuffled)
    assert got == expected
    assert got.state_hash() == expected.state_hash()


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(10))))
def test_fold_is_order_independent_property(order):
    _, events = lifecycle_events()
    assert fold([events[i] for i in order]) == fold(events)


def test_fold_without_created_is_none():
    _, events = lifecycle_events()
    assert fold(events[1:]) is None
    assert fold([]) is None


def test_fold_is_pure():
    _, events = lifecycle_events()
    before = [e.to_wire() for e in events]
    first = fold(events)
    assert fold(events) == first
    assert [e.to_wire() for e in events] == before


def test_heads():
    b = Builder()
    assert heads([]) == ()
    c = b.add("kab-paser", "created", 1000, CREATED)
    assert heads(b.events) == (c.id,)
    v = b.add("nasional", "verified", 2000)
    assert heads(b.events) == (v.id,)
    x = b.add("nasional", "routed", 3000, {"institution": "paser-disdikbud", "node": "kab-paser"}, parents=[v.id])
    y = b.add("kab-paser", "reporter_replied", 3000, {"text": "hal"}, parents=[v.id])
    assert heads(b.events) == tuple(sorted([x.id, y.id]))  # two concurrent extremities
    m = b.add("kab-paser", "accepted", 4000)  # names both as parents
    assert set(m.parents) == {x.id, y.id}
    assert heads(b.events) == (m.id,)
    shuffled = list(b.events)
    random.Random(1).shuffle(shuffled)
    assert heads(shuffled) == (m.id,)


def test_a_created_state_is_the_one_the_dataclass_would_build():
    """fold builds states without TicketState.__init__ (ticket._fresh); the result must be the same."""
    from node.ticket import TicketState, _fresh
    created = Builder().add("kab-paser", "created", 1000, CREATED)
    state = fold([created])
    expected = TicketState(ticket_id="t1", tracking_id=CREATED["tracking_id"], origin="kab-paser",
                           report_type="pengaduan", category="pendidikan", topic="smp", region="6401",
                           kecamatan="Tanah Grogot", title=CREATED["title"], body=CREATED["body"],
                           incident_date="2026-10-06", anonim=False, rahasia=False, channel="web",
                           chosen_institution=None, filed_at=CREATED["filed_at"], hub="nasional",
                           last_hlc=created.hlc, event_count=1)
    assert state == expected and state.public_dict() == expected.public_dict()
    values = {k: v for k, v in expected.public_dict().items() if k not in ("status", "ignored")}
    with pytest.raises(TypeError, match="missing"):
        _fresh({k: v for k, v in values.items() if k != "region"})
    with pytest.raises(TypeError, match="unknown"):
        _fresh({**values, "colour": "red"})


def test_a_ticket_filed_before_created_named_its_hub_is_routed_by_the_federations_hub(monkeypatch):
    """Releases before ``created`` carried ``hub`` filed tickets without it. Before, after an upgrade, the
    fold took the hub's routing of such a ticket for a stranger's, and the ticket froze, held by nobody."""
    import node.ticket as ticket
    monkeypatch.setattr(ticket, "_legacy_hub", None)
    legacy = {k: v for k, v in CREATED.items() if k != "hub"}
    b = Builder()
    b.add("kab-paser", "created", 1000, legacy)
    b.add("nasional", "routed", 3000, {"institution": "paser-disdikbud", "node": "kab-paser"})
    b.add("kab-paser", "accepted", 4000)
    ticket._FOLDED.clear()
    assert fold(b.events).holder_node is None                    # (what an upgraded node showed)
    ticket.set_legacy_hub("nasional")
    state = fold(b.events)
    assert (state.hub, state.holder_node, state.status) == ("nasional", "kab-paser", Status.IN_PROGRESS)
    ticket.set_legacy_hub(None)
