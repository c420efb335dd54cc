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
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import IntegrityError, ValidationError

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


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_SAFE_INT = 2**53 - 1
_PLAIN_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False,
                               check_circular=False).encode


def _plain(obj: Any) -> bool:
    """Only strings, safe integers, booleans, null, lists and objects with ASCII keys?"""
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is int:
        return -_SAFE_INT <= obj <= _SAFE_INT
    if t is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in obj.items())
    if t is list or t is tuple:
        return all(_plain(v) for v in obj)
    return False


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes.

    Events and ticket states hold only strings, integers, booleans, null, lists
    and objects with ASCII keys. For those, RFC 8785 is exactly the standard
    library's compact JSON with sorted keys and no ASCII escaping: the same
    string escapes, the same integer form, and ASCII keys sort the same by
    UTF-16 code units as by code points. That path is C code, several times
    faster than the pure-Python reference; everything else (floats, other
    keys, integers beyond 2**53, lone surrogates) goes to the reference
    implementation (Trail of Bits' rfc8785), which also owns the errors.
    """
    if _plain(obj):
        try:
            return _PLAIN_JSON(obj).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(obj)


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

    def canonical_wire(self) -> str:
        return canonical(self.to_wire()).decode("utf-8")

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise IntegrityError unless the id is the hash of the body and the
        signature verifies with ``public_key``."""
        data = canonical(self.body())
        if hashlib.sha256(data).hexdigest() != self.id:
            raise IntegrityError(f"event {self.id}: id is not the hash of its content")
        try:
            public_key.verify(unb64u(self.sig), data)
        except (InvalidSignature, ValueError) as exc:
            raise IntegrityError(f"event {self.id}: signature does not verify with key {self.key}") from exc

    @classmethod
    def from_wire(cls, data: Any) -> "Event":
        """Parse a wire event, checking its shape (not its signature)."""
        if not isinstance(data, Mapping):
            raise ValidationError("an event must be a JSON object")
        missing = [f for f in ("id", "sig", *BODY_FIELDS) if f not in data]
        if missing:
            raise ValidationError(f"event is missing field(s): {', '.join(missing)}")
        extra = sorted(set(data) - {"id", "sig", *BODY_FIELDS})
        if extra:
            raise ValidationError(f"event has unknown field(s): {', '.join(extra)}")
        checks = [
            ("id", isinstance(data["id"], str) and len(data["id"]) == 64),
            ("sig", isinstance(data["sig"], str)),
            ("ticket", isinstance(data["ticket"], str) and 0 < len(data["ticket"]) <= 64),
            ("author", isinstance(data["author"], str) and 0 < len(data["author"]) <= 64),
            ("seq", isinstance(data["seq"], int) and not isinstance(data["seq"], bool) and data["seq"] >= 1),
            ("prev", data["prev"] is None or isinstance(data["prev"], str)),
            ("parents", isinstance(data["parents"], list) and all(isinstance(p, str) for p in data["parents"])),
            ("hlc", isinstance(data["hlc"], str) and len(data["hlc"]) == 21),
            ("type", data["type"] in EVENT_TYPES),
            ("payload", isinstance(data["payload"], Mapping)),
            ("key", isinstance(data["key"], str)),
        ]
        bad = [name for name, ok in checks if not ok]
        if bad:
            raise ValidationError(f"event has invalid field(s): {', '.join(bad)}")
        return cls(id=data["id"], sig=data["sig"], ticket=data["ticket"], author=data["author"],
                   seq=data["seq"], prev=data["prev"], parents=tuple(data["parents"]), hlc=data["hlc"],
                   type=data["type"], payload=dict(data["payload"]), key=data["key"])


def make_event(*, ticket: str, author: str, seq: int, prev: str | None, parents: tuple[str, ...] | list[str],
               hlc: str, type: str, payload: Mapping[str, Any], key_id: str,
               private_key: Ed25519PrivateKey) -> Event:
    """Build, hash and sign a new event."""
    if type not in EVENT_TYPES:
        raise ValidationError(f"unknown event type {type!r}")
    body = {"ticket": ticket, "author": author, "seq": seq, "prev": prev, "parents": sorted(parents),
            "hlc": hlc, "type": type, "payload": dict(payload), "key": key_id}
    data = canonical(body)
    return Event(id=hashlib.sha256(data).hexdigest(), sig=b64u(private_key.sign(data)), ticket=ticket,
                 author=author, seq=seq, prev=prev, parents=tuple(sorted(parents)), hlc=hlc, type=type,
                 payload=dict(payload), key=key_id)
