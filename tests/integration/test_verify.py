"""``verify_log`` on a real SQLite node (set up by the real ``simpul init``, run in-process).

Besides hashes and links, verify must catch an event signed with a key that is not
its author's (even though the signature itself verifies), and a cut or rewritten
tail of our own chain (which leaves no gap behind: only the recorded chain head
shows it).
"""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from node.keys import raw_public
from node.verify import verify_log
from schemas.complaints import ComplaintIn
from schemas.events import make_event

PPU, BPP = "kab-ppu", "kota-balikpapan"
HLC = "0001764270000000.0001"
# key id -> the owner the directory records
DIRECTORY = {f"{PPU}#sig-1": PPU, f"{PPU}#sig-9": BPP, f"{BPP}#sig-3": PPU}
PEER_KEYS = {key_id: Ed25519PrivateKey.generate() for key_id in DIRECTORY}


@pytest.fixture
def node(tmp_path, make_node, sample_complaints):
    """kab-paser with three filed complaints, knowing kab-ppu's key and two keys whose id and recorded owner
    disagree (``DIRECTORY``)."""
    node = make_node(tmp_path)
    for body in sample_complaints[:3]:
        node.complaints.file(ComplaintIn.model_validate(body))
    with node.storage.transaction() as tx:
        tx.put_node(PPU, role="district")
        tx.put_node(BPP, role="district")
        for key_id, owner in DIRECTORY.items():
            tx.put_key(key_id, node_id=owner, kind="signing", public=raw_public(PEER_KEYS[key_id].public_key()),
                       valid_from=0)
    return node


def own_events(node) -> list[tuple[int, str]]:
    with node.storage.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT seq, id FROM events WHERE author = :a ORDER BY seq"),
                                               {"a": node.node_id})]


def signed(node, *, author: str, key_id: str, seq: int = 1, prev: str | None = None):
    private = node.keys.signing[key_id] if key_id in node.keys.signing else PEER_KEYS[key_id]
    return make_event(ticket="t-forged", author=author, seq=seq, prev=prev, parents=(), hlc=HLC,
                      type="followed_up", payload={"text": "selesai"}, key_id=key_id, private_key=private)


def store(node, *events) -> None:
    with node.storage.transaction() as tx:
        tx.insert_events(list(events))


def sql(node, statement: str, **params) -> None:
    with node.storage.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_a_clean_log_with_part_of_a_peers_chain_passes(node):
    store(node, signed(node, author=PPU, key_id=f"{PPU}#sig-1", seq=7, prev="a" * 64))  # we hold only seq 7
    report = verify_log(node.storage, node.keys)
    assert report.problems == []
    assert report.checked == 4


@pytest.mark.parametrize("author, key_id, says", [
    (PPU, "kab-paser#sig-1", f"of kab-paser, not a key of its author {PPU}"),   # our own key, another author
    (BPP, f"{PPU}#sig-1", f"of {PPU}, not a key of its author {BPP}"),          # a peer's key, another peer
    (PPU, f"{PPU}#sig-9", f"of {BPP}, not a key of its author {PPU}"),          # the id names the author only
    (PPU, f"{BPP}#sig-3", f"recorded as its author {PPU}'s, but its id names {BPP}"),  # the directory only
], ids=["our-key", "peer-key", "other-recorded-owner", "other-named-owner"])
def test_an_event_signed_with_a_key_not_of_its_author_is_named(node, author, key_id, says):
    forged = signed(node, author=author, key_id=key_id)
    store(node, forged)
    problems = verify_log(node.storage, node.keys).problems
    assert len(problems) == 1, problems
    assert forged.id in problems[0] and key_id in problems[0] and says in problems[0]


@pytest.mark.parametrize("cut", [1, 3])
def test_a_cut_tail_of_our_chain_is_named(node, cut):
    events = own_events(node)
    head_seq, head_id = events[-1]
    sql(node, "DELETE FROM events WHERE author = :a AND seq > :s", a=node.node_id, s=len(events) - cut)
    problems = verify_log(node.storage, node.keys).problems
    assert len(problems) == 1, problems
    assert f"recorded chain head is seq {head_seq}" in problems[0] and head_id in problems[0]
    assert "newest events are missing" in problems[0]


def test_a_rewritten_newest_event_of_our_chain_is_named(node):
    _, (_, second), (last, head_id) = own_events(node)
    sql(node, "DELETE FROM events WHERE id = :id", id=head_id)
    other = signed(node, author=node.node_id, key_id=node.keys.signing_key_id, seq=last, prev=second)
    store(node, other)
    problems = verify_log(node.storage, node.keys).problems
    assert len(problems) == 1, problems
    assert other.id in problems[0] and f"recorded chain head is {head_id}" in problems[0]


def test_a_row_stored_under_another_author_is_named(node):
    (_, first), *_ = own_events(node)
    sql(node, "UPDATE events SET author = :a WHERE id = :id", a=PPU, id=first)   # our seq 1, filed as kab-ppu's
    problems = verify_log(node.storage, node.keys).problems
    assert any(first in p and f"stored as {PPU}'s, but signed as kab-paser's" in p for p in problems), problems
    assert any("gap in own chain before seq 2" in p for p in problems), problems


def test_a_first_event_with_a_prev_is_named(node):
    bad = signed(node, author=PPU, key_id=f"{PPU}#sig-1", prev="b" * 64)
    store(node, bad)
    problems = verify_log(node.storage, node.keys).problems
    assert problems == [f"event {bad.id}: seq 1 must start the chain, but its prev is {'b' * 64}"]


def _raw(node, event_id: str) -> str:
    with node.storage.engine.connect() as conn:
        return conn.execute(text("SELECT raw FROM events WHERE id = :id"), {"id": event_id}).scalar_one()


@pytest.mark.parametrize("tamper, says", [
    ("big-integer", "IntegerDomainError"),        # a number canonical JSON cannot hold
    ("nan", "FloatDomainError"),
    ("deeply-nested", "RecursionError"),
], ids=["big-integer", "nan", "deeply-nested"])
def test_a_row_that_breaks_the_checks_is_named_and_the_rest_still_checked(node, tamper, says):
    """Before, such a row ended ``simpul verify`` with a traceback, and nothing after it was checked."""
    (_, first), (_, second), _ = own_events(node)
    raw = _raw(node, second)
    if tamper == "big-integer":
        raw = raw.replace('"payload":{', '"payload":{"n":1152921504606846976000000,', 1)
    elif tamper == "nan":
        raw = raw.replace('"payload":{', '"payload":{"n":NaN,', 1)
    else:
        raw = raw.replace('"payload":{', '"payload":{"n":' + "[" * 5000 + "]" * 5000 + ",", 1)
    sql(node, "UPDATE events SET raw = :raw WHERE id = :id", raw=raw, id=second)
    report = verify_log(node.storage, node.keys)
    assert report.checked == 3
    assert len(report.problems) == 1 and "seq 2" in report.problems[0] and says in report.problems[0], report.problems


def test_an_event_stored_under_another_id_is_named(node):
    """The id column is what every lookup goes by; before, '00' there passed."""
    (_, first), *_ = own_events(node)
    sql(node, "UPDATE events SET id = '00' WHERE id = :id", id=first)
    problems = verify_log(node.storage, node.keys).problems
    assert problems == [f"event {first}: stored under the id '00'"]


def test_a_seq_that_is_not_a_number_is_named(node):
    *_, (_, last) = own_events(node)
    sql(node, "UPDATE events SET seq = 'abc' WHERE id = :id", id=last)
    problems = verify_log(node.storage, node.keys).problems
    assert f"event '{last}' is stored with seq 'abc', not a number" in problems[0], problems
