"""Retrying the identities that wait for a sealing key, on a real node and SQLite database (made by
``simpul init`` with the sample federation): a backlog is retried a page per write transaction, with a
bounded number of statements per page whatever its size, and a page that fails is rolled back alone."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import event

from node import identity as identity_module
from node.errors import StorageError
from node.identity import IdentityService
from node.lifecycle import Status
from node.sealing import SealedBox, open_sealed, public_b64
from node.ticket import TicketState
from schemas.events import make_event

HUB, WAITING_FOR = "nasional", "bpjs-kesehatan"    # hosted on the hub, no sealing key in the sample
PAGE = 200


@pytest.fixture
def node(tmp_path, make_node, sample_dir):
    return make_node(tmp_path, node_id="kab-paser", federation=sample_dir / "federation.json")


@pytest.fixture
def statements(node):
    """Every SQL statement the node's database runs (an executemany counts once)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(node.storage.engine, "before_cursor_execute", record)
    yield seen
    event.remove(node.storage.engine, "before_cursor_execute", record)


def state(node, i: int, holder: str | None, institution: str | None) -> TicketState:
    return TicketState(ticket_id=f"t{i:05d}", tracking_id=f"KAB-PASER-2610-{i:05d}", origin=node.node_id,
                       report_type="pengaduan", category="kesehatan", topic="jkn", region="6401", kecamatan=None,
                       title="JKN", body="Kartu JKN tidak aktif", incident_date=None, anonim=False, rahasia=False,
                       channel="web", chosen_institution=None, filed_at="2026-10-07T01:02:03Z",
                       status=Status.DISPOSITIONED, institution=institution, holder_node=holder)


def test_a_backlog_is_retried_a_page_per_transaction_with_a_few_statements_each(node, statements):
    """3,000 pending: two in three still wait for bpjs-kesehatan's key; one in six is held here now (nothing
    to seal); one in six has no ticket any more."""
    ids = [f"t{i:05d}" for i in range(3000)]
    with node.storage.transaction() as tx:
        for i, ticket_id in enumerate(ids):
            if i % 6 == 4:
                tx.put_ticket(state(node, i, node.node_id, "paser-dinkes"))
            elif i % 6 != 5:
                tx.put_ticket(state(node, i, HUB, WAITING_FOR))
        tx.add_identity_pending(ids)
    service = IdentityService(node, page_size=PAGE)
    statements.clear()
    assert service.reseal_pending() == 0
    pages = len(ids) // PAGE
    assert sum(s.startswith("BEGIN IMMEDIATE") for s in statements) == pages     # one write tx per page
    assert sum("FROM institutions" in s for s in statements) == pages            # one directory read each
    assert len(statements) <= 10 * (pages + 1)                                     # nothing per ticket
    assert service.pending() == [t for i, t in enumerate(ids) if i % 6 < 4]


def half_leaving(node) -> list[str]:
    """1,000 pending tickets: the even ones still wait for bpjs-kesehatan's key, the odd ones are held here
    now (nothing to seal any more: they leave the pending set)."""
    ids = [f"t{i:05d}" for i in range(1000)]
    with node.storage.transaction() as tx:
        for i, ticket_id in enumerate(ids):
            holder, inst = (node.node_id, "paser-dinkes") if i % 2 else (HUB, WAITING_FOR)
            tx.put_ticket(state(node, i, holder, inst))
        tx.add_identity_pending(ids)
    return ids


def poison(monkeypatch, ticket_id: str, error: Exception):
    """Deciding for ``ticket_id`` raises ``error``; returns the real decide_seal, to put it back."""
    decide = identity_module.decide_seal

    def failing_decide(state, **kwargs):
        if state.ticket_id == ticket_id:
            raise error
        return decide(state, **kwargs)
    monkeypatch.setattr(identity_module, "decide_seal", failing_decide)
    return decide


def test_a_failing_page_is_rolled_back_alone(node, monkeypatch):
    ids = half_leaving(node)
    decide = poison(monkeypatch, ids[455], StorageError("database is locked"))   # in the third page
    service = IdentityService(node, page_size=PAGE)
    with pytest.raises(StorageError):
        service.reseal_pending()
    assert service.pending() == ids[0:400:2] + ids[400:]     # pages 1 and 2 committed; 3 on untouched
    monkeypatch.setattr(identity_module, "decide_seal", decide)
    assert service.reseal_pending() == 0
    assert service.pending() == ids[0::2]


def test_a_ticket_that_always_fails_holds_back_neither_its_page_nor_the_next(node, monkeypatch, caplog):
    """A bug one ticket triggers (not the database being down) failed its page for good: every retry
    stopped there, and the pages after it waited for ever. Its page is now retried a ticket at a time."""
    ids = half_leaving(node)
    poison(monkeypatch, ids[455], RuntimeError("a bug this ticket triggers"))     # odd, in the third page
    service = IdentityService(node, page_size=PAGE)
    assert service.reseal_pending() == 0
    assert service.pending() == sorted(ids[0::2] + [ids[455]])     # only the poisoned one stayed behind
    assert f"identity of ticket {ids[455]} could not be re-sealed" in caplog.text


def filed_and_routed_to_the_hub(node, n: int) -> list[str]:
    """``n`` tickets filed here and routed by the hub to bpjs-kesehatan (hub events stored as a receive
    stores them; their signatures are not what this test is about)."""
    hub_key, ids, routed, prev = Ed25519PrivateKey.generate(), [], [], None
    with node.storage.transaction() as tx:
        for i in range(n):
            ticket_id = f"t{i:05d}"
            tx.new_ticket(ticket_id)
            created = node.log.append(tx, ticket_id, "created", {
                "tracking_id": f"KAB-PASER-2610-{i:05d}", "type": "pengaduan", "category": "kesehatan",
                "topic": "jkn", "region": "6401", "kecamatan": "Tanah Grogot", "title": "Kartu JKN tidak aktif",
                "body": "Kartu JKN saya tidak aktif.", "incident_date": "2026-10-06", "anonim": False,
                "rahasia": False, "channel": "web", "chosen_institution": None,
                "filed_at": "2026-10-07T01:02:03Z", "hub": HUB}).event
            tx.put_private(ticket_id, {"name": f"Pelapor {i}", "phone": "+62 812 0000 0124"}, "", [])
            routed.append(make_event(ticket=ticket_id, author=HUB, seq=i + 1, prev=prev, parents=[created.id],
                                     hlc=node.clock.tick(), type="routed", key_id=f"{HUB}#sig-1",
                                     private_key=hub_key, payload={"institution": WAITING_FOR, "node": HUB,
                                                                   "reason": "jkn", "rule": "competence"}))
            prev = routed[-1].id
            ids.append(ticket_id)
        node.log.ingest(tx, HUB, routed)
        tx.add_identity_pending(ids)
    return ids


def test_when_the_key_arrives_the_backlog_is_sealed_page_by_page(node, statements):
    ids = filed_and_routed_to_the_hub(node, 2 * PAGE + 50)
    service = IdentityService(node, page_size=PAGE)
    assert service.reseal_pending() == 0 and service.pending() == ids
    key = X25519PrivateKey.generate()
    with node.storage.transaction() as tx:
        inst = next(i for i in tx.institutions() if i["id"] == WAITING_FOR)
        tx.put_institution({**inst, "sealing_key_id": f"{WAITING_FOR}#seal-1",
                            "sealing_public": public_b64(key.public_key())})
    statements.clear()
    assert service.reseal_pending() == len(ids)
    assert sum(s.startswith("BEGIN IMMEDIATE") for s in statements) == 3
    assert len(statements) <= 20 * 4                      # sealing reads a page's events and records at once
    assert service.pending() == []
    with node.storage.read() as tx:
        for i in (0, PAGE, len(ids) - 1):
            sealed = tx.get_ticket(ids[i]).sealed_identity
            assert (sealed["holder_node"], sealed["institution"]) == (HUB, WAITING_FOR)
            opened = open_sealed(SealedBox.from_dict(sealed["box"]), ticket_id=ids[i],
                                 private_keys={f"{WAITING_FOR}#seal-1": key})
            assert opened["name"] == f"Pelapor {i}"
        seq, _ = tx.chain_head(node.node_id)
        assert seq == 2 * len(ids)                         # one created and one identity_sealed each


def test_the_same_wait_is_logged_once_not_at_every_retry(node, caplog):
    """Retried after every directory refresh (every pull interval): the line that says the same again, for as
    long as an institution has no sealing key, went to the log at INFO every time."""
    import logging
    with node.storage.transaction() as tx:
        tx.put_ticket(state(node, 1, HUB, WAITING_FOR))
        tx.add_identity_pending(["t00001"])
    service = IdentityService(node)
    with caplog.at_level(logging.INFO, logger="node.identity"):
        for _ in range(3):
            service.reseal_pending()
        with node.storage.transaction() as tx:
            tx.put_ticket(state(node, 2, HUB, WAITING_FOR))
            tx.add_identity_pending(["t00002"])
        service.reseal_pending()
    said = [r.getMessage() for r in caplog.records if "still wait" in r.message]
    assert len(said) == 2 and said[0].startswith("1 identities") and said[1].startswith("2 identities")
