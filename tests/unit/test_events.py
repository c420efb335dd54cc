"""Unit tests for schemas.events: build, hash, sign, verify, parse."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import IntegrityError, ValidationError
from schemas.events import BODY_FIELDS, Event, b64u, canonical, make_event, signature_valid, unb64u

KEY = Ed25519PrivateKey.generate()


def new_event(**over) -> Event:
    args = dict(ticket="t1", author="kab-paser", seq=2, prev="a" * 64, parents=["c" * 64, "b" * 64],
                hlc="0001764270000000.0003", type="followed_up",
                payload={"text": "Sudah ditinjau; biaya seragam dihapus.", "actor": "Budi"},
                key_id="kab-paser#sig-1", private_key=KEY)
    args.update(over)
    return make_event(**args)


def test_round_trip_verifies():
    e = new_event()
    e.verify(KEY.public_key())
    assert e.parents == ("b" * 64, "c" * 64)  # sorted
    assert e.id == hashlib.sha256(canonical(e.body())).hexdigest()
    wire = json.loads(e.canonical_wire())
    assert set(wire) == {"id", "sig", *BODY_FIELDS}
    again = Event.from_wire(wire)
    assert again == e
    again.verify(KEY.public_key())


def test_an_unparsed_event_sends_its_stored_json_and_parses_it_when_read():
    e = new_event()
    raw = e.canonical_wire()
    lazy = Event.unparsed(e.id, raw)
    assert lazy.canonical_wire() is raw
    assert set(lazy.__dict__) == {"id", "_wire"}          # sent without being parsed
    assert (lazy.seq, lazy.parents, lazy.payload) == (e.seq, e.parents, e.payload)
    assert lazy == e and e == lazy and hash(lazy) == hash(e) and lazy.to_wire() == e.to_wire()
    assert lazy != new_event(seq=3) and new_event(seq=3) != Event.unparsed(e.id, raw)
    lazy.verify(KEY.public_key())
    with pytest.raises(AttributeError):
        lazy.no_such_field  # noqa: B018


def test_an_event_checked_in_another_process_is_the_one_its_canonical_json_holds():
    e = new_event(type="created", payload={"tracking_id": "KAB-PASER-1", "type": "pengaduan", "category": "x",
                                           "region": "6401", "title": "Judul", "body": "Isi", "anonim": False,
                                           "rahasia": False, "channel": "web", "filed_at": "2026-10-07T01:02:03Z"})
    raw = e.canonical_wire()
    wire = json.loads(raw)
    checked = Event.checked(wire, raw)
    assert checked == e == Event.from_stored(raw) and type(checked.parents) is tuple
    assert checked.canonical_wire() is raw and checked.to_wire() == e.to_wire()
    assert checked.payload is not wire["payload"]   # (its own copy, as from_wire's)
    checked.verify(KEY.public_key())


def test_id_depends_on_content_not_on_key_order():
    a = new_event(payload={"x": 1, "y": "é"})
    b = new_event(payload={"y": "é", "x": 1})
    assert a.id == b.id
    assert a.id != new_event(payload={"x": 2, "y": "é"}).id


@pytest.mark.parametrize("change", [
    {"payload": {"text": "Sudah ditinjau; biaya seragam TIDAK dihapus.", "actor": "Budi"}},
    {"seq": 3},
    {"prev": "d" * 64},
    {"parents": ("b" * 64,)},
    {"hlc": "0001764270000000.0004"},
    {"ticket": "t2"},
    {"type": "closed"},
    {"key": "kab-paser#sig-2"},
])
def test_tampered_event_fails(change):
    e = new_event()
    with pytest.raises(IntegrityError, match=e.id):
        replace(e, **change).verify(KEY.public_key())


def test_tampered_wire_payload_fails():
    wire = json.loads(new_event().canonical_wire())
    wire["payload"]["text"] = "diubah"
    with pytest.raises(IntegrityError, match="hash"):
        Event.from_wire(wire).verify(KEY.public_key())


def test_wrong_key_or_signature_fails():
    e = new_event()
    with pytest.raises(IntegrityError, match="signature"):
        e.verify(Ed25519PrivateKey.generate().public_key())
    other = new_event(private_key=Ed25519PrivateKey.generate())
    with pytest.raises(IntegrityError, match="signature"):
        replace(e, sig=other.sig).verify(KEY.public_key())
    with pytest.raises(IntegrityError):
        replace(e, sig="not-base64!").verify(KEY.public_key())


def test_signature_of_another_length_fails():
    e = new_event()
    sig = unb64u(e.sig)
    for other in (sig[:-1], sig + b"\0", sig[:32], b""):
        with pytest.raises(IntegrityError, match="signature"):
            replace(e, sig=b64u(other)).verify(KEY.public_key())


def test_an_event_checks_with_plain_openssl_too():
    """Events are verified with libsodium; the module's promise is that any Ed25519 implementation agrees."""
    e = new_event()
    KEY.public_key().verify(unb64u(e.sig), canonical(e.body()))   # (raises if not)
    public = KEY.public_key().public_bytes_raw()
    assert signature_valid(public, unb64u(e.sig), canonical(e.body()))
    assert not signature_valid(public, unb64u(e.sig), canonical(e.body()) + b" ")


def test_an_event_signed_by_libsodium_carries_the_signature_openssl_makes():
    e = new_event()
    data = canonical(e.body())
    assert unb64u(e.sig) == KEY.sign(data)
    KEY.public_key().verify(unb64u(e.sig), data)   # (raises if not)


def test_a_small_order_key_signs_nothing():
    """With the identity point as public key, R = identity and S = 0 satisfy Ed25519's equation for every
    message: OpenSSL accepts that signature, libsodium refuses it."""
    identity = bytes([1]) + bytes(31)
    assert not signature_valid(identity, identity + bytes(32), b"any message")


def test_make_event_rejects_unknown_type():
    with pytest.raises(ValidationError):
        new_event(type="deleted")


def _wire():
    return json.loads(new_event().canonical_wire())


@pytest.mark.parametrize("field", ["id", "sig", *BODY_FIELDS])
def test_from_wire_rejects_missing_field(field):
    data = _wire()
    del data[field]
    with pytest.raises(ValidationError, match=field):
        Event.from_wire(data)


def test_from_wire_rejects_unknown_field():
    data = _wire()
    data["extra"] = 1
    with pytest.raises(ValidationError, match="extra"):
        Event.from_wire(data)


@pytest.mark.parametrize("field,value", [
    ("id", "abc"), ("seq", "2"), ("seq", 0), ("seq", True), ("prev", 5), ("parents", "x"), ("parents", [1]),
    ("hlc", "1"), ("type", "deleted"), ("payload", []), ("ticket", ""), ("author", None), ("key", 1),
    ("sig", None), ("type", ["created"]), ("type", {"a": 1}), ("id", "x" * 65), ("hlc", 21),
])
def test_from_wire_rejects_bad_values(field, value):
    data = _wire()
    data[field] = value
    with pytest.raises(ValidationError, match=field):
        Event.from_wire(data)


@pytest.mark.parametrize("data", [None, [], "event", 3])
def test_from_wire_rejects_non_objects(data):
    with pytest.raises(ValidationError):
        Event.from_wire(data)


@pytest.mark.parametrize("payload, says", [
    ({"conflict": "c1", "winner": "merged", "state": {"title": {"x": 1}}}, "'title' must be a str"),
    ({"conflict": "c1", "winner": "merged", "state": {"holder_node": ["kab-ppu"]}}, "'holder_node' must be a str"),
    ({"conflict": "c1", "winner": "merged", "state": {"status": "hilang"}}, "must name a known status"),
    ({"conflict": "c1", "winner": "C", "state": {}}, "'winner' (A, B or merged)"),
    ({"winner": "A"}, "needs 'conflict' as str"),
], ids=["title-an-object", "holder-a-list", "unknown-status", "unknown-winner", "no-conflict"])
def test_a_resolution_whose_state_the_fold_cannot_apply_is_refused(payload, says):
    """Before, an object as title was stored on every replica, and a list as holder_node failed the batch."""
    wire = new_event(type="conflict_resolved", payload=payload).to_wire()
    with pytest.raises(ValidationError, match=re.escape(says)):
        Event.from_wire(wire)


def test_a_created_with_a_list_where_a_name_goes_is_refused():
    wire = new_event(type="created", seq=1, prev=None, parents=[], payload={
        "tracking_id": "KAB-PASER-2611-00001", "type": "pengaduan", "category": "pendidikan", "region": "6401",
        "title": "Pungutan", "body": "Pungutan seragam di sekolah", "anonim": False, "rahasia": False,
        "channel": "web", "filed_at": "kab-paser", "chosen_institution": ["paser-disdikbud"]}).to_wire()
    with pytest.raises(ValidationError, match="'chosen_institution' must be a str or null"):
        Event.from_wire(wire)
