"""The signed event: the one wire format every node stores and exchanges.

An event is a flat JSON object::

    {"id": "<sha256 hex>", "sig": "<base64url Ed25519>",
     "ticket": "...", "author": "kab-paser", "seq": 12, "prev": "<id>|null",
     "parents": ["<id>", ...], "hlc": "0001764270000000.0003",
     "type": "created", "payload": {...}, "key": "kab-paser#sig-1"}

``id`` is the SHA-256 (hex) of the RFC 8785 canonical JSON of every field but
``id`` and ``sig``; ``sig`` is the author's Ed25519 signature over those same
canonical bytes. ``prev`` is the id of the author's event ``seq - 1`` (null for
seq 1), so each node's events form a hash chain. ``parents`` are the ticket's
events the author had seen (Matrix's prev_events). ``hlc`` is a hybrid logical
clock, zero-padded so that it sorts as text.

Anyone can check an event with an independent RFC 8785 implementation, SHA-256
and plain Ed25519, using the key published at ``GET /federation/v1/keys``.

Signatures are checked with libsodium (PyNaCl), not with OpenSSL (the
``cryptography`` package, which holds the nodes' keys), and events are signed
with it too (``sign``). Checking every event's signature is the first limit of
a sync, and libsodium checks 1.6 to 3 times as many per second on one core of
a 2-core VM (``scripts/bench`` measures both). Ed25519 signatures are
deterministic, so the signer's library does not matter, and libsodium is the
stricter verifier: besides what OpenSSL checks, it refuses small-order and
non-canonically encoded keys and points.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Any

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from node.errors import IntegrityError, ValidationError
from node.lifecycle import STATUS_VALUES

EVENT_TYPES = frozenset({
    "created",            # a complaint is filed (origin node)
    "verified",           # an admin verified the report
    "routed",             # disposisi to an institution (hub, or hub admin)
    "accepted",           # the holder took the ticket on
    "returned",           # bukan wewenang: the holder sends it back for rerouting
    "followed_up",        # tindak lanjut by the holder institution
    "status_changed",     # the holder's own progression (in_progress)
    "reporter_replied",   # the reporter answers (through the origin node)
    "reopened",
    "closed",
    "archived",
    "edited",             # the hub edits title/body during verification
    "identity_sealed",    # the origin seals the reporter identity to the holder
    "conflict_resolved",
})

BODY_FIELDS = ("ticket", "author", "seq", "prev", "parents", "hlc", "type", "payload", "key")
# Every node accepts a federation request body (a batch of events) of this many bytes. A batch, pushed or
# answering a pull, carries at most BATCH_EVENTS_MAX_BYTES of events (``within_bytes``), whatever their
# number: a complaint's text may be 20,000 characters. A quarter is left for the JSON around the events.
BATCH_MAX_BYTES = 4 * 1024 * 1024
BATCH_EVENTS_MAX_BYTES = BATCH_MAX_BYTES * 3 // 4
# One event's signed bytes: a complaint of 20,000 characters with every field full is under 100 KB. A
# received event over this is refused: one near the body limit could not be sent on (its batch's JSON
# around it put the hub's push over what the next node reads).
EVENT_MAX_BYTES = 256 * 1024
SAFE_INTEGER = 2**53 - 1   # RFC 8785 (I-JSON): the largest integer canonical JSON holds exactly


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_SAFE_INT = 2**53 - 1
SIGNATURE_BYTES = 64


def signature_valid(public: bytes, signature: bytes, data: bytes) -> bool:
    """Is ``signature`` an Ed25519 signature of ``data`` by the raw 32-byte key ``public``? (libsodium; see the
    module docstring)"""
    if len(signature) != SIGNATURE_BYTES:  # (libsodium takes the signature and the data as one string)
        return False
    try:
        crypto_sign_open(signature + data, public)
    except BadSignatureError:
        return False
    return True


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The Ed25519 signature of ``data``, made by libsodium: 21 us against OpenSSL's 34 on the 2-core VM
    (a hub routing, a district filing or sealing). Ed25519 signatures are deterministic: the same bytes
    as ``private_key.sign(data)``."""
    return crypto_sign(data, _sodium_secret(private_key))[:64]


@lru_cache(maxsize=16)
def _sodium_secret(private_key: Ed25519PrivateKey) -> bytes:
    """libsodium's form of ``private_key`` (its seed and its public key), made once per key."""
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return crypto_sign_seed_keypair(seed)[1]


def _plain(obj: Any) -> bool:
    """Only strings, safe integers, booleans, null, lists and objects with ASCII keys?
    (Iterative: it runs on every event's body, and a recursive generator walk cost as much as the encoding.)"""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is str or t is bool or o is None:
            continue
        if t is int:
            if not -_SAFE_INT <= o <= _SAFE_INT:
                return False
        elif t is dict:
            for k, v in o.items():
                if type(k) is not str or not k.isascii():
                    return False
                if type(v) is not str:
                    stack.append(v)
        elif t is list or t is tuple:
            stack.extend(o)
        else:
            return False
    return True


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes.

    Events and ticket states hold only strings, integers, booleans, null, lists
    and objects with ASCII keys. For those, RFC 8785 is exactly compact JSON
    with sorted keys and no ASCII escaping, which is what orjson writes with
    OPT_SORT_KEYS: the same string escapes, the same integer form, and ASCII
    keys sort the same by UTF-16 code units as by code points. orjson is about
    ten times faster than the standard library and a hundred times faster than
    the pure-Python reference; everything else (floats, other keys, integers
    beyond 2**53, lone surrogates) goes to the reference implementation (Trail
    of Bits' rfc8785), which also owns the errors. tests/unit/test_canonical.py
    checks the two byte for byte.
    """
    return _canonical(obj)[0]


def _canonical(obj: Any) -> tuple[bytes, bool]:
    """(canonical bytes, whether the fast path made them)."""
    if _plain(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), True
        except orjson.JSONEncodeError:  # a lone surrogate: the reference says what is wrong
            pass
    return rfc8785.dumps(obj), False


def _splice(body: str, id: str, sig: str) -> str:
    """The canonical wire form from the canonical body: ``id`` and ``sig`` (ASCII, nothing to escape) go
    where sorted keys put them, after the top-level ``hlc`` and before the top-level ``ticket``. Inside a
    JSON string every quote is escaped, so ``,"hlc":"`` first occurs as the member after ``author`` (a
    string), and ``,"ticket":"`` last occurs as the member before ``type`` (a string from EVENT_TYPES).
    tests/unit/test_canonical.py checks this against encoding the whole object."""
    h = body.index('"', body.index(',"hlc":"') + 8) + 1  # after the clock's closing quote (digits and a dot)
    t = body.rindex(',"ticket":"')
    return f'{body[:h]},"id":"{id}"{body[h:t]},"sig":"{sig}"{body[t:]}'


@dataclass(frozen=True)
class Event:
    id: str
    sig: str
    ticket: str
    author: str
    seq: int
    prev: str | None
    parents: tuple[str, ...]
    hlc: str
    type: str
    payload: Mapping[str, Any] = field(hash=False)
    key: str

    def body(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "author": self.author, "seq": self.seq, "prev": self.prev,
                "parents": list(self.parents), "hlc": self.hlc, "type": self.type,
                "payload": dict(self.payload), "key": self.key}

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "sig": self.sig, **self.body()}

    # An event never changes, so its canonical forms are computed once per object (and the stored form,
    # which is canonical, is handed to the objects read back from storage): see ``from_stored``.
    @cached_property
    def _signed(self) -> tuple[bytes, bool]:
        return _canonical(self.body())

    def canonical_wire(self) -> str:
        wire = self.__dict__.get("_wire")
        if wire is None:
            data, plain = self.__dict__.pop("_signed", None) or _canonical(self.body())
            wire = _splice(data.decode("utf-8"), self.id, self.sig) if plain else (
                rfc8785.dumps(self.to_wire()).decode("utf-8"))
            self.__dict__["_wire"] = wire  # kept instead of the signed bytes: an event is stored once
        return wire

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise IntegrityError unless the id is the hash of the body and the
        signature verifies with ``public_key``."""
        data = self._signed[0]
        if len(data) > EVENT_MAX_BYTES:
            raise IntegrityError(f"event {self.id}: {len(data)} bytes, over the {EVENT_MAX_BYTES} an event may hold")
        if hashlib.sha256(data).hexdigest() != self.id:
            raise IntegrityError(f"event {self.id}: id is not the hash of its content")
        try:
            signature = unb64u(self.sig)
        except ValueError:  # not base64
            signature = b""
        if not signature_valid(public_key.public_bytes_raw(), signature, data):
            raise IntegrityError(f"event {self.id}: signature does not verify with key {self.key}")

    @classmethod
    def from_wire(cls, data: Any) -> "Event":
        """Parse a wire event, checking its shape (not its signature)."""
        if not isinstance(data, Mapping):
            raise ValidationError("an event must be a JSON object")
        if data.keys() != _WIRE_FIELDS:
            missing = [f for f in ("id", "sig", *BODY_FIELDS) if f not in data]
            if missing:
                raise ValidationError(f"event is missing field(s): {', '.join(missing)}")
            raise ValidationError(f"event has unknown field(s): {', '.join(sorted(set(data) - _WIRE_FIELDS))}")
        bad = _invalid(data)
        if bad:
            raise ValidationError(f"event has invalid field(s): {', '.join(bad)}")
        problem = _payload_problem(data["type"], data["payload"])
        if problem:
            raise ValidationError(f"event payload: {problem}")
        return _of_wire(data)

    @staticmethod
    def checked(data: Mapping[str, Any], wire: str) -> "Event":
        """The event of the wire fields ``data`` that passed ``from_wire`` and ``verify`` already, in another
        process (node.check_worker), as parsed from the same bytes; ``wire``: its canonical JSON, as that
        check made it. Taking the fields as they are cost a hub's database thread half what parsing
        ``wire`` again did (about 1.5 us an event against 3.5)."""
        return _of_wire(data, _wire=wire)

    @staticmethod
    def unparsed(event_id: str, raw: str) -> "Event":
        """The event stored as ``raw`` under ``event_id``, to be sent on as it is (``UnparsedEvent``)."""
        event = object.__new__(UnparsedEvent)
        event.__dict__.update(id=event_id, _wire=raw)
        return event

    @classmethod
    def from_stored(cls, raw: str) -> "Event":
        """An event from its stored canonical JSON. Storage holds only events that were checked on the way
        in (``from_wire`` and ``verify``, or signed here), so the shape is not checked again."""
        return _new(**_stored_fields(raw), _wire=raw)


_WIRE_FIELDS = frozenset(("id", "sig", *BODY_FIELDS))


def within_bytes(batch: list, limit: int = BATCH_EVENTS_MAX_BYTES) -> list:
    """The longest start of ``batch`` ((position, event) pairs) whose events' JSON adds up to at most
    ``limit`` bytes; at least its first event. The rest goes in the next batch. Without it, 500 events of
    long complaints made a push over what the hub accepts: it refused the body (413) before checking who
    sent it, with an answer the sender could not verify, so the sender backed off and sent the same batch
    again, for ever."""
    size = 0
    for n, (_, event) in enumerate(batch):
        wire = event.canonical_wire()
        size += len(wire) if wire.isascii() else len(wire.encode("utf-8"))
        if size > limit and n:
            return batch[:n]
    return batch


def items_json(batch) -> str:
    """A batch's ``items`` as JSON: each (position, event) as ``{"pos": .., "event": ..}``, the event as its
    canonical JSON, spliced in as it is (stored events are not parsed to be sent)."""
    return "[" + ",".join(f'{{"pos":{int(pos)},"event":{e.canonical_wire()}}}' for pos, e in batch) + "]"


class UnparsedEvent(Event):
    """An event read back from storage to be sent on as it is (``Event.unparsed``): it holds its id and its
    stored JSON, and parses the JSON the first time another field is read.

    A sync loop reads a batch of its outbox to push it, and the push sends each event's stored canonical
    JSON unchanged: parsing it on the way only to splice it back cost a district sending a backlog about
    25 us per event, a sixth of its work. The lazy lookup lives in this subclass only: a class with
    ``__getattr__`` gets none of the interpreter's fast attribute reads, and every other event's fields
    are read all the time (on ``Event`` itself, it slowed a drain by a tenth). It equals the ``Event`` it
    stands for."""

    def __getattr__(self, name: str) -> Any:   # only called for a field not parsed yet
        if name not in _WIRE_FIELDS:
            raise AttributeError(f"'Event' object has no attribute {name!r}")
        parsed = _stored_fields(self.__dict__["_wire"])
        self.__dict__.update(parsed)
        return parsed[name]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Event))

    __hash__ = Event.__hash__


def _stored_fields(raw: str) -> dict[str, Any]:
    """An event's fields from its stored canonical JSON (``parents`` as the tuple ``Event`` holds)."""
    parsed = orjson.loads(raw)
    parsed["parents"] = tuple(parsed["parents"])
    return parsed


def _of_wire(data: Mapping[str, Any], **extra: Any) -> Event:
    """The Event of wire fields ``data`` whose shape was checked (``from_wire``), with its own payload."""
    return _new(id=data["id"], sig=data["sig"], ticket=data["ticket"], author=data["author"], seq=data["seq"],
                prev=data["prev"], parents=tuple(data["parents"]), hlc=data["hlc"], type=data["type"],
                payload=dict(data["payload"]), key=data["key"], **extra)


def _new(**fields: Any) -> Event:
    """An Event from fields already checked, without the frozen dataclass's ``__init__`` (a receive makes
    one per item)."""
    event = object.__new__(Event)
    event.__dict__.update(fields)
    return event


_HLC = re.compile(r"[0-9]{16}\.[0-9]{4}")  # node.clock's fixed width: wall milliseconds, counter
# What the fold reads from a payload by key (node/ticket.py): a received event must have it, of that type.
_PAYLOAD_NEEDS: dict[str, dict[str, type]] = {
    "created": {"tracking_id": str, "type": str, "category": str, "region": str, "title": str, "body": str,
                "anonim": bool, "rahasia": bool, "channel": str, "filed_at": str},
    "routed": {"institution": str, "node": str},
    "conflict_resolved": {"conflict": str},
}
# What the fold reads if it is there: absent or null, or of that type (a list as chosen_institution made
# the hub's routing fail on the whole batch).
_PAYLOAD_MAY: dict[str, dict[str, type]] = {
    "created": {"topic": str, "kecamatan": str, "incident_date": str, "chosen_institution": str, "hub": str},
    "verified": {"anonim": bool, "rahasia": bool},
}
# A resolution's merged state: the fields it may set, and their types (an object as title was stored).
_RESOLVED_FIELDS: dict[str, type] = {"status": str, "institution": str, "holder_node": str, "title": str,
                                     "body": str}
_STATUSES = frozenset(STATUS_VALUES)


def _payload_problem(type_: str, payload: Mapping) -> str | None:
    """Why the fold could not apply ``payload`` (a missing or mistyped field it reads), or None."""
    for key, kind in _PAYLOAD_NEEDS.get(type_, {}).items():
        if type(payload.get(key)) is not kind:
            return f"{type_} needs {key!r} as {kind.__name__}"
    for key, kind in _PAYLOAD_MAY.get(type_, {}).items():
        if payload.get(key) is not None and type(payload[key]) is not kind:
            return f"{type_}: {key!r} must be a {kind.__name__} or null"
    if type_ == "conflict_resolved":
        state = payload.get("state", {})
        if not isinstance(state, Mapping) or payload.get("winner") not in ("A", "B", "merged"):
            return "conflict_resolved needs 'winner' (A, B or merged) and 'state' as an object"
        for key, kind in _RESOLVED_FIELDS.items():
            if state.get(key) is not None and type(state[key]) is not kind:
                return f"conflict_resolved: state {key!r} must be a {kind.__name__}"
        if "status" in state and state["status"] not in _STATUSES:
            return "conflict_resolved: state 'status' must name a known status"
    return None


def _invalid(data: Mapping) -> list[str]:
    """The names of ``data``'s fields that do not have their wire type (the one statement of those rules)."""
    def text(v, lo=0, hi=None):
        return isinstance(v, str) and lo <= len(v) and (hi is None or len(v) <= hi)
    checks = [
        ("id", text(data["id"], 64, 64)),
        ("sig", text(data["sig"])),
        ("ticket", text(data["ticket"], 1, 64)),
        ("author", text(data["author"], 1, 64)),
        ("seq", type(data["seq"]) is int and 1 <= data["seq"] <= SAFE_INTEGER),
        ("prev", data["prev"] is None or text(data["prev"])),
        ("parents", isinstance(data["parents"], list) and all(isinstance(p, str) for p in data["parents"])),
        ("hlc", text(data["hlc"], 21, 21) and _HLC.fullmatch(data["hlc"]) is not None),
        ("type", isinstance(data["type"], str) and data["type"] in EVENT_TYPES),
        ("payload", isinstance(data["payload"], Mapping)),
        ("key", text(data["key"])),
    ]
    return [name for name, ok in checks if not ok]


def make_event(*, ticket: str, author: str, seq: int, prev: str | None, parents: tuple[str, ...] | list[str],
               hlc: str, type: str, payload: Mapping[str, Any], key_id: str,
               private_key: Ed25519PrivateKey) -> Event:
    """Build, hash and sign a new event."""
    if type not in EVENT_TYPES:
        raise ValidationError(f"unknown event type {type!r}")
    parents = sorted(parents)
    body = {"ticket": ticket, "author": author, "seq": seq, "prev": prev, "parents": parents,
            "hlc": hlc, "type": type, "payload": dict(payload), "key": key_id}
    data, plain = _canonical(body)
    event = Event(id=hashlib.sha256(data).hexdigest(), sig=b64u(sign(private_key, data)), ticket=ticket,
                  author=author, seq=seq, prev=prev, parents=tuple(parents), hlc=hlc, type=type,
                  payload=body["payload"], key=key_id)
    event.__dict__["_signed"] = (data, plain)
    return event
