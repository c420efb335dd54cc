"""Unit tests for node.identity: the sealing and access policies, and the
service's seal / defer / open / audit paths, with fakes for storage and log."""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node import sealing
from node.errors import Conflict, Forbidden, NotFound, SealingError, StorageError, ValidationError
from node.identity import IdentityService, decide_access, decide_seal, current_sealing_key, public_view
from node.lifecycle import Status
from node.sealing import SealedBox, open_sealed, public_b64, wrap_private_key
from node.ticket import TicketState

HUB, ORIGIN, HOLDER, OTHER = "nasional", "kab-ppu", "kab-paser", "kota-balikpapan"
IDENTITY = {"name": "Rizky Maulana", "nik": "6401082307920024", "phone": "+62 812 0000 0124"}
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(sealing, "SCRYPT_N", 2**4)


def ticket(**changes) -> TicketState:
    base = TicketState(ticket_id="t1", tracking_id="KAB-PPU-2610-00001", origin=ORIGIN, report_type="pengaduan",
                       category="kependudukan", topic="kk", region="6401", kecamatan=None, title="KK",
                       body="Kartu keluarga belum diperbarui", incident_date=None, anonim=False, rahasia=False,
                       channel="web", chosen_institution=None, filed_at="2026-10-04T00:00:00Z",
                       status=Status.DISPOSITIONED, institution="paser-disdukcapil", holder_node=HOLDER)
    return replace(base, **changes)


def key_row(key_id: str, public: str = "pub", kind: str = "sealing", valid_until=None) -> dict:
    return {"key_id": key_id, "node_id": key_id.split("#")[0], "kind": kind, "public": public,
            "valid_from": 0.0, "valid_until": valid_until}


class FakeDirectory:
    def __init__(self, nodes=None, keys=None, institutions=None):
        self.nodes = nodes or {}
        self.keys = keys or []
        self.insts = institutions or {}
        self.lookups: list[str] = []

    def node(self, node_id):
        self.lookups.append(node_id)
        return self.nodes.get(node_id)

    def node_keys(self, node_id):
        return [k for k in self.keys if k["node_id"] == node_id]

    def institution(self, institution_id):
        return self.insts.get(institution_id)


def decide(state, directory=None, self_id=ORIGIN):
    return decide_seal(state, self_id=self_id, hub_id=HUB, directory=directory or FakeDirectory(), now=NOW)


# -- decide_seal ----------------------------------------------------------------------
HOLDER_DIR = FakeDirectory(nodes={HOLDER: {"node_id": HOLDER}},
                           keys=[key_row(f"{HOLDER}#seal-1", "old"), key_row(f"{HOLDER}#seal-2", "new"),
                                 key_row(f"{HOLDER}#sig-9", "sig", kind="signing")])
PLN = {"id": "pln-uid-kaltimra", "node_id": HUB, "sealing_key_id": "pln-uid-kaltimra#seal-1",
       "sealing_public": "plnpub"}


@pytest.mark.parametrize("state, self_id, action, reason_part", [
    (ticket(), HOLDER, "none", "not the origin"),
    (ticket(anonim=True), ORIGIN, "none", "anonim"),
    (ticket(anonim=True, holder_node=HUB, institution="pln-uid-kaltimra"), ORIGIN, "none", "anonim"),
    (ticket(holder_node=None, institution=None), ORIGIN, "none", "no holder"),
    (ticket(holder_node=ORIGIN, institution="ppu-disdukcapil"), ORIGIN, "none", "local"),
    (ticket(sealed_identity={"holder_node": HOLDER, "institution": "paser-disdukcapil", "box": {}}), ORIGIN,
     "none", "already sealed"),
    (ticket(), ORIGIN, "seal", HOLDER),
    # sealed for another institution of the same holder: seal again for the current one
    (ticket(sealed_identity={"holder_node": HOLDER, "institution": "paser-pupr", "box": {}}), ORIGIN, "seal", ""),
])
def test_decide_seal_table(state, self_id, action, reason_part):
    d = decide(state, HOLDER_DIR, self_id)
    assert d.action == action
    assert reason_part in d.reason


def test_anonymous_ticket_never_even_looks_up_a_key():
    directory = FakeDirectory(nodes={HOLDER: {"node_id": HOLDER}}, keys=[key_row(f"{HOLDER}#seal-1")])
    assert decide(ticket(anonim=True), directory).action == "none"
    assert directory.lookups == []


def test_seals_to_the_holders_current_key():
    d = decide(ticket(), HOLDER_DIR)
    assert (d.target.holder_node, d.target.institution, d.target.key_id, d.target.public) == (
        HOLDER, "paser-disdukcapil", f"{HOLDER}#seal-2", "new")


def test_current_key_is_numeric_highest_and_unexpired():
    keys = [key_row("x#seal-2"), key_row("x#seal-10"), key_row("x#seal-11", valid_until=NOW - 1)]
    assert current_sealing_key(keys, NOW)["key_id"] == "x#seal-10"
    assert current_sealing_key([key_row("x#sig-1", kind="signing")], NOW) is None


@pytest.mark.parametrize("directory, reason_part", [
    (FakeDirectory(), "not in the directory"),
    (FakeDirectory(nodes={HOLDER: {"node_id": HOLDER}}), "no sealing key"),
    (FakeDirectory(nodes={HOLDER: {"node_id": HOLDER}}, keys=[key_row(f"{HOLDER}#seal-1", valid_until=NOW - 5)]),
     "no sealing key"),
    (FakeDirectory(nodes={HOLDER: {"node_id": HOLDER, "revoked_at": NOW - 10}}, keys=[key_row(f"{HOLDER}#seal-1")]),
     "revoked"),
])
def test_unknown_or_unusable_holder_key_defers(directory, reason_part):
    d = decide(ticket(), directory)
    assert d.action == "defer" and reason_part in d.reason


def test_hub_hosted_institution_is_sealed_to_its_own_key_never_the_hubs():
    directory = FakeDirectory(nodes={HUB: {"node_id": HUB}}, keys=[key_row(f"{HUB}#seal-1", "hubpub")],
                              institutions={PLN["id"]: PLN})
    d = decide(ticket(holder_node=HUB, institution=PLN["id"]), directory)
    assert d.action == "seal"
    assert (d.target.key_id, d.target.public, d.target.institution) == (PLN["sealing_key_id"], "plnpub", PLN["id"])


def test_hub_hosted_institution_without_key_defers():
    directory = FakeDirectory(nodes={HUB: {"node_id": HUB}}, keys=[key_row(f"{HUB}#seal-1", "hubpub")],
                              institutions={"bpjs": {"id": "bpjs", "node_id": HUB}})
    d = decide(ticket(holder_node=HUB, institution="bpjs"), directory)
    assert d.action == "defer" and "no sealing key" in d.reason


# -- decide_access --------------------------------------------------------------------
BOX = {"recipient_key_id": f"{HOLDER}#seal-1"}


@pytest.mark.parametrize("state, self_id, outcome", [
    (ticket(anonim=True), ORIGIN, Forbidden),
    (ticket(anonim=True), HOLDER, Forbidden),
    (ticket(), ORIGIN, "origin"),
    (ticket(), OTHER, Forbidden),                                       # not the holder
    (ticket(holder_node=None, institution=None,                         # returned: the old holder lost it
            sealed_identity=None), HOLDER, Forbidden),
    (ticket(), HOLDER, Conflict),                                       # pending
    (ticket(sealed_identity={"holder_node": OTHER, "institution": "x", "box": BOX}), HOLDER, Conflict),
    (ticket(sealed_identity={"holder_node": HOLDER, "institution": "paser-pupr", "box": BOX}), HOLDER,
     "node_keys"),
    (ticket(holder_node=HUB, institution="pln", sealed_identity={"holder_node": HUB, "institution": "pln",
                                                                 "box": BOX}), HUB, "institution"),
    (ticket(holder_node=HUB, institution="bpjs", sealed_identity={"holder_node": HUB, "institution": "pln",
                                                                  "box": BOX}), HUB, Conflict),
])
def test_decide_access_table(state, self_id, outcome):
    if isinstance(outcome, str):
        assert decide_access(state, self_id=self_id, hub_id=HUB).source == outcome
    else:
        with pytest.raises(outcome):
            decide_access(state, self_id=self_id, hub_id=HUB)


def test_anonymous_refusal_names_the_origin():
    with pytest.raises(Forbidden, match=f"anonymous report.*contact the reporter through {ORIGIN}"):
        decide_access(ticket(anonim=True), self_id=HOLDER, hub_id=HUB)


# -- the service, with fakes ------------------------------------------------------------
class FakeTx:
    """Reads and writes go to the FakeStorage; the pending set is the transaction's own copy, committed at
    the end (a transaction that raises changes none of it)."""

    def __init__(self, db):
        self.db = db
        self.pending = set(db.pending)

    def get_ticket(self, ticket_id):
        self.db.calls.append("get_ticket")
        return self.db.tickets.get(ticket_id)

    def get_tickets(self, ticket_ids):
        self.db.calls.append("get_tickets")
        return {t: self.db.tickets[t] for t in ticket_ids if t in self.db.tickets}

    def get_private(self, ticket_id):
        self.db.calls.append("get_private")
        return self.db.private.get(ticket_id)

    def get_privates(self, ticket_ids):
        self.db.calls.append("get_privates")
        return {t: self.db.private[t] for t in ticket_ids if t in self.db.private}

    def prefetch_ticket_events(self, ticket_ids):
        pass

    def add_identity_pending(self, ticket_ids):
        self.db.calls.append("add_identity_pending")
        self.pending |= set(ticket_ids)

    def remove_identity_pending(self, ticket_ids):
        self.db.calls.append("remove_identity_pending")
        self.pending -= set(ticket_ids)

    def identity_pending(self, after="", limit=500):
        self.db.calls.append("identity_pending")
        return sorted(t for t in self.pending if t > after)[:limit]

    def get_node(self, node_id):
        return self.db.directory.node(node_id)

    def node_keys(self, node_id):
        return self.db.directory.node_keys(node_id)

    def institutions(self):
        self.db.calls.append("institutions")
        return list(self.db.directory.insts.values())

    def meta_get(self, key, default=None):
        return self.db.meta.get(key, default)

    def meta_set(self, key, value):
        self.db.meta[key] = value

    def audit(self, ticket_id, actor, action, detail=""):
        self.db.audits.append({"ticket_id": ticket_id, "actor": actor, "action": action, "detail": detail})

    def audit_log(self, ticket_id):
        return [a for a in self.db.audits if a["ticket_id"] == ticket_id]


class FakeStorage:
    def __init__(self, directory):
        self.tickets, self.private, self.meta, self.audits = {}, {}, {}, []
        self.pending: set[str] = set()
        self.directory = directory
        self.calls: list[str] = []      # what the service asked of its transactions, in order

    @contextlib.contextmanager
    def transaction(self):
        self.calls.append("write")
        tx = FakeTx(self)
        yield tx
        self.pending = tx.pending

    @contextlib.contextmanager
    def read(self):
        self.calls.append("read")
        yield FakeTx(self)


class FakeLog:
    def __init__(self):
        self.appended = []

    def append(self, tx, ticket_id, type, payload, check=True):
        self.appended.append((ticket_id, type, payload))


class FakeKeys:
    def __init__(self, sealing_keys):
        self.sealing = sealing_keys


class FakeNode:
    def __init__(self, node_id, directory, sealing_keys=None):
        self.node_id, self.hub_id = node_id, HUB
        self.storage = FakeStorage(directory)
        self.log = FakeLog()
        self.keys = FakeKeys(sealing_keys or {})


def reseal(service, tx, state):
    """The decision for one ticket of a receive."""
    return service.reseal_all(tx, [state])[state.ticket_id]


@pytest.fixture
def holder_key():
    return X25519PrivateKey.generate()


@pytest.fixture
def origin(holder_key):
    directory = FakeDirectory(nodes={HOLDER: {"node_id": HOLDER}},
                              keys=[key_row(f"{HOLDER}#seal-1", public_b64(holder_key.public_key()))])
    node = FakeNode(ORIGIN, directory)
    node.storage.private["t1"] = {"identity": IDENTITY, "original_body": "", "redactions": []}
    return node


def test_origin_seals_for_the_holder_and_the_box_opens_only_there(origin, holder_key):
    service = IdentityService(origin, now=lambda: NOW)
    with origin.storage.transaction() as tx:
        assert reseal(service, tx, ticket()).action == "seal"
    [(ticket_id, type_, payload)] = origin.log.appended
    assert (ticket_id, type_, payload["holder_node"], payload["institution"]) == (
        "t1", "identity_sealed", HOLDER, "paser-disdukcapil")
    assert "Rizky" not in json.dumps(payload) and "6401082307920024" not in json.dumps(payload)
    box = SealedBox.from_dict(payload["box"])
    assert open_sealed(box, ticket_id="t1", private_keys={f"{HOLDER}#seal-1": holder_key}) == IDENTITY
    with pytest.raises(SealingError):
        open_sealed(box, ticket_id="t1", private_keys={f"{HOLDER}#seal-1": X25519PrivateKey.generate()})
    assert origin.storage.audits[-1]["action"] == "identity_sealed"


def test_a_receive_reads_the_records_of_all_its_tickets_at_once_then_seals(origin, holder_key):
    # t1 and t2 go to the holder, t3 is anonymous, t4's holder has no key yet: one read of the records,
    # before the first seal (a read between two seals would write out the first one's rows on its own).
    origin.storage.private["t2"] = origin.storage.private["t4"] = origin.storage.private["t1"]
    origin.storage.directory.nodes["kab-other"] = {"node_id": "kab-other"}
    states = [ticket(), ticket(ticket_id="t2"), ticket(ticket_id="t3", anonim=True),
              ticket(ticket_id="t4", holder_node="kab-other")]
    calls, append = origin.storage.calls, origin.log.append
    origin.log.append = lambda *a, **k: (calls.append("append"), append(*a, **k))
    service = IdentityService(origin, now=lambda: NOW)
    with origin.storage.transaction() as tx:
        decisions = service.reseal_all(tx, states)
        pending = tx.pending
    assert {t: d.action for t, d in decisions.items()} == {"t1": "seal", "t2": "seal", "t3": "none",
                                                            "t4": "defer"}
    assert [(t, kind) for t, kind, _ in origin.log.appended] == [("t1", "identity_sealed"),
                                                                 ("t2", "identity_sealed")]
    assert calls.count("get_privates") == 1 and "get_private" not in calls
    assert calls.index("get_privates") < calls.index("append")
    assert pending == {"t4"}


def test_anonymous_identity_is_never_sealed(origin):
    service = IdentityService(origin, now=lambda: NOW)
    with origin.storage.transaction() as tx:
        assert reseal(service, tx, ticket(anonim=True)).action == "none"
    assert origin.log.appended == []


def test_missing_key_defers_then_reseal_pending_seals(origin, holder_key):
    keys = origin.storage.directory.keys
    origin.storage.directory.keys = []
    service = IdentityService(origin, now=lambda: NOW)
    origin.storage.tickets["t1"] = ticket()
    with origin.storage.transaction() as tx:
        assert reseal(service, tx, ticket()).action == "defer"   # no exception in the receive tx
    assert origin.log.appended == [] and service.pending() == ["t1"]
    assert service.reseal_pending() == 0                                 # still unknown: stays pending
    origin.storage.directory.keys = keys                                  # the directory refreshed
    assert service.reseal_pending() == 1
    assert [a[1] for a in origin.log.appended] == ["identity_sealed"]
    assert service.pending() == []


def backlog(origin, n: int) -> list[str]:
    """``n`` pending tickets: the even ones for bpjs, hosted on the hub and still without a key, the odd ones
    for kab-paser, whose key the directory now has."""
    origin.storage.directory.insts["bpjs"] = {"id": "bpjs", "node_id": HUB}
    ids = [f"t{i:05d}" for i in range(n)]
    for i, ticket_id in enumerate(ids):
        waits = {} if i % 2 else {"holder_node": HUB, "institution": "bpjs"}
        origin.storage.tickets[ticket_id] = ticket(ticket_id=ticket_id, tracking_id=f"KAB-PPU-2610-{i:05d}", **waits)
        origin.storage.private[ticket_id] = {"identity": IDENTITY, "original_body": "", "redactions": []}
    origin.storage.pending = set(ids)
    return ids


def test_a_large_backlog_is_retried_a_page_per_transaction_not_a_ticket(origin):
    ids = backlog(origin, 3000)
    service = IdentityService(origin, now=lambda: NOW, page_size=200)
    assert service.reseal_pending() == 1500
    calls = origin.storage.calls
    assert calls.count("write") == 15                   # one write transaction per page of 200
    assert calls.count("institutions") == 15            # one directory read per transaction
    assert calls.count("get_tickets") == 15 and "get_ticket" not in calls
    assert calls.count("remove_identity_pending") == 15 and "add_identity_pending" not in calls
    assert len(calls) <= 10 * 16                        # nothing per ticket: a few calls per page
    assert len(origin.log.appended) == 1500
    assert service.pending() == ids[0::2]               # those still without a key wait, in order
    assert service.pending(after=ids[10], limit=3) == ids[12:18:2]


def test_a_page_that_fails_changes_nothing_and_the_pages_before_it_stay_done(origin):
    ids = backlog(origin, 1000)
    service = IdentityService(origin, now=lambda: NOW, page_size=200)
    append, poison = origin.log.append, ids[451]         # to be sealed, in the third page

    def failing_append(tx, ticket_id, *args, **kwargs):
        if ticket_id == poison:
            raise StorageError("disk I/O error")
        return append(tx, ticket_id, *args, **kwargs)

    origin.log.append = failing_append
    with pytest.raises(StorageError):
        service.reseal_pending()
    assert service.pending() == ids[0:400:2] + ids[400:]   # pages 1-2 committed, page 3 on untouched
    origin.log.append = append
    assert service.reseal_pending() == 300
    assert service.pending() == ids[0::2]


def test_the_server_retries_a_page_per_database_call(origin):
    ids = backlog(origin, 450)
    service = IdentityService(origin, now=lambda: NOW, page_size=200)
    calls = []

    async def run(fn, *args):                            # node.db: one call per page, others get in between
        calls.append(args)
        return fn(*args)

    assert asyncio.run(service.reseal_pending_via(run)) == 225
    assert calls == [("",), (ids[199],), (ids[399],)]
    assert service.pending() == ids[0::2]


def test_pending_tickets_gone_or_with_nothing_to_seal_leave_the_set(origin):
    origin.storage.tickets["t2"] = ticket(ticket_id="t2", holder_node=ORIGIN, institution="ppu-disdukcapil")
    origin.storage.pending = {"t1", "t2"}                # t1: no ticket any more
    service = IdentityService(origin, now=lambda: NOW)
    assert service.reseal_pending() == 0
    assert service.pending() == [] and origin.log.appended == []
    origin.storage.calls.clear()
    assert service.reseal_pending() == 0
    assert "write" not in origin.storage.calls           # nothing pending: no write transaction at all


def test_a_bad_public_key_in_the_directory_defers_instead_of_failing(origin):
    origin.storage.directory.keys = [key_row(f"{HOLDER}#seal-1", "not-base64!")]
    service = IdentityService(origin, now=lambda: NOW)
    with origin.storage.transaction() as tx:
        assert reseal(service, tx, ticket()).action == "defer"
    assert origin.log.appended == []


def sealed_ticket(origin, holder_key_id="kab-paser#seal-1", **changes):
    service = IdentityService(origin, now=lambda: NOW)
    state = ticket(**changes)
    with origin.storage.transaction() as tx:
        reseal(service, tx, state)
    _, _, payload = origin.log.appended[-1]
    return replace(state, sealed_identity=dict(payload))


def test_holder_opens_with_any_of_its_keys_and_it_is_audited(origin, holder_key):
    state = sealed_ticket(origin)
    rotated = X25519PrivateKey.generate()   # the holder rotated since: the old key still opens
    holder = FakeNode(HOLDER, FakeDirectory(), {f"{HOLDER}#seal-1": holder_key, f"{HOLDER}#seal-2": rotated})
    holder.storage.tickets["t1"] = state
    opened = IdentityService(holder).open("t1", role="operator", actor_name="Budi", reason="call the reporter")
    assert opened.identity == IDENTITY and opened.key_id == f"{HOLDER}#seal-1"
    assert holder.storage.audits == [{"ticket_id": "t1", "actor": "operator:Budi", "action": "identity_opened",
                                      "detail": "call the reporter"}]


def test_tampered_box_fails_cleanly_and_the_failure_is_audited(origin, holder_key):
    state = sealed_ticket(origin)
    box = dict(state.sealed_identity["box"])
    ct = box["ciphertext"]
    box["ciphertext"] = ("A" if ct[0] != "A" else "B") + ct[1:]
    holder = FakeNode(HOLDER, FakeDirectory(), {f"{HOLDER}#seal-1": holder_key})
    holder.storage.tickets["t1"] = replace(state, sealed_identity={**state.sealed_identity, "box": box})
    with pytest.raises(SealingError, match="failed authentication"):
        IdentityService(holder).open("t1", role="operator", actor_name=None, reason="check")
    assert [a["action"] for a in holder.storage.audits] == ["identity_open_failed"]


def test_old_holder_and_pending_are_refused_and_audited(origin, holder_key):
    holder = FakeNode(HOLDER, FakeDirectory(), {f"{HOLDER}#seal-1": holder_key})
    holder.storage.tickets["t1"] = ticket(holder_node=None, institution=None)
    with pytest.raises(Forbidden):
        IdentityService(holder).open("t1", role="operator", actor_name=None, reason="check")
    holder.storage.tickets["t1"] = ticket()
    with pytest.raises(Conflict, match="pending"):
        IdentityService(holder).open("t1", role="operator", actor_name=None, reason="check")
    assert [a["action"] for a in holder.storage.audits] == ["identity_open_denied"] * 2
    with pytest.raises(NotFound):
        IdentityService(holder).open("nope", role="operator", actor_name=None, reason="check")


def test_hub_hosted_institution_opens_only_with_its_passphrase(origin):
    inst_key = X25519PrivateKey.generate()
    inst = {"id": "pln", "node_id": HUB, "sealing_key_id": "pln#seal-1",
            "sealing_public": public_b64(inst_key.public_key()),
            "wrapped_private": json.dumps(wrap_private_key(inst_key, "correct horse battery"))}
    origin.storage.directory.insts["pln"] = inst
    state = sealed_ticket(origin, holder_node=HUB, institution="pln")
    assert state.sealed_identity["box"]["recipient_key_id"] == "pln#seal-1"
    hub_key = X25519PrivateKey.generate()
    hub = FakeNode(HUB, FakeDirectory(institutions={"pln": inst}), {f"{HUB}#seal-1": hub_key})
    hub.storage.tickets["t1"] = state
    service = IdentityService(hub)
    with pytest.raises(ValidationError, match="passphrase"):
        service.open("t1", role="operator", actor_name=None, reason="r1")
    with pytest.raises(SealingError, match="wrong passphrase"):
        service.open("t1", role="operator", actor_name=None, reason="r2", passphrase="wrong one")
    opened = service.open("t1", role="operator", actor_name="PLN CS", reason="r3", passphrase="correct horse battery")
    assert opened.identity == IDENTITY
    # every attempt is audited: the one without a passphrase, the wrong one, the right one
    assert [a["action"] for a in hub.storage.audits] == ["identity_open_failed"] * 2 + ["identity_opened"]


def test_origin_reads_its_own_record_but_never_an_anonymous_one(origin):
    service = IdentityService(origin)
    origin.storage.tickets["t1"] = ticket()
    assert service.open("t1", role="operator", actor_name=None, reason="intake check").identity == IDENTITY
    origin.storage.tickets["t1"] = ticket(anonim=True)
    with pytest.raises(Forbidden, match="anonymous"):
        service.open("t1", role="operator", actor_name=None, reason="curious")


def test_messages_are_served_at_the_origin_only(origin):
    followups = ({"event": "e1", "author": HOLDER, "hlc": "h", "text": "Mohon datang ke kantor"},)
    origin.storage.tickets["t1"] = ticket(followups=followups)
    msgs = IdentityService(origin).messages("t1")
    assert msgs["messages"] == [{"kind": "follow_up", "event": "e1", "from": HOLDER, "hlc": "h",
                                 "text": "Mohon datang ke kantor"}]
    holder = FakeNode(HOLDER, FakeDirectory())
    holder.storage.tickets["t1"] = ticket(followups=followups)
    with pytest.raises(NotFound, match="origin node kab-ppu"):
        IdentityService(holder).messages("t1")


def test_public_view_has_no_identity_or_routing_internals():
    view = public_view(ticket(sealed_identity={"holder_node": HOLDER, "institution": "x", "box": BOX}))
    assert "sealed_identity" not in view and "holder_node" not in view and "origin" not in view
    assert view["tracking_id"] == "KAB-PPU-2610-00001"
