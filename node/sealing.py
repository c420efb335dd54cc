"""Sealing a reporter's identity to the node that handles the ticket.

Design rule (design.md, "Confidentiality"): the identity (name, NIK, phone,
email, address) leaves the origin node only encrypted to the X25519 sealing key
of the handling node, never to the hub. This module is the pure crypto; whether
to seal at all (an anonymous report's identity never leaves its origin) is the
caller's decision.

Seal construction, alg "X25519-HKDF-SHA256-ChaCha20Poly1305" (v1)
1. ``e = X25519PrivateKey.from_private_bytes(rand(32))``, ``E = e.public``;
   ``R`` = recipient public key. ``rand`` defaults to ``os.urandom``.
2. ``shared = X25519(e, R)``; an all-zero result (low-order R) is rejected.
3. ``key = HKDF-SHA256(shared, length=32, salt=raw(E) || raw(R),
   info=b"simpul/identity-seal/v1" + b"|" + utf8(ticket_id))``.
4. ``nonce = rand(12)``;
   ``ad = b"simpul/identity-seal/v1|" + utf8(ticket_id) + b"|" + utf8(recipient_key_id)``.
5. ``ciphertext = ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)`` (tag
   appended), ``plaintext = utf8(json.dumps(identity, sort_keys=True,
   ensure_ascii=False, separators=(",", ":")))``.
The box carries recipient_key_id, E, nonce, ciphertext (base64url, no padding)
and alg. The ticket id is not in the box: the opener supplies it, so a box
pasted onto another ticket fails (bound by both HKDF info and AD), as does a
relabelled recipient_key_id (AD). A "|" inside a ticket id cannot make two
(ticket, key id) pairs collide, because the HKDF info binds the ticket id alone.
HPKE (RFC 9180) was not used: ``cryptography`` ships it only in recent releases
and the project supports ``cryptography>=43``; this is the same
ephemeral-static ECDH + KDF + AEAD pattern, spelled out.

Rotation: ``open_sealed`` picks the private key by ``box.recipient_key_id``, so
identities sealed to an old key open as long as the old key stays in the mapping.

Passphrase-wrapped private keys (institutions hosted on the hub; the hub's own
operators must not be able to open them): ``salt = rand(16)``; ``kek =
scrypt(utf8(NFC(passphrase)), salt, n=SCRYPT_N=2**15, r=8, p=1, length=32)``;
``nonce = rand(12)``; ``ciphertext = ChaCha20Poly1305(kek).encrypt(nonce,
raw 32-byte private key, b"simpul/key-wrap/v1")``. The dict stores the KDF
parameters, so unwrap follows them (bounded, so a forged dict cannot demand
unbounded memory), and the public key, which is checked after unwrapping.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.errors import SealingError

SEAL_ALG = "X25519-HKDF-SHA256-ChaCha20Poly1305"
SEAL_CONTEXT = b"simpul/identity-seal/v1"
WRAP_ALG = "scrypt-ChaCha20Poly1305"
WRAP_AD = b"simpul/key-wrap/v1"
SCRYPT_N = 2**15  # module constant on purpose: tests monkeypatch a smaller one
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_SCRYPT_MEMORY = 256 * 2**20  # 128 * r * n bytes; bounds a forged wrapped dict
_NONCE_LEN = 12
_TAG_LEN = 16
_AUTH_FAILED = "sealed identity failed authentication (tampered or wrong key)"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")

Rand = Callable[[int], bytes]


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(value: object, field: str) -> bytes:
    """Strict base64url (no padding, canonical) or SealingError."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise SealingError(f"{field}: not base64url text")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealingError(f"{field}: invalid base64url ({exc})") from None
    if _b64e(data) != value:
        raise SealingError(f"{field}: non-canonical base64url")
    return data


def _raw_public(pub: X25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_b64(pub: X25519PublicKey) -> str:
    """The raw 32-byte public key as base64url without padding."""
    return _b64e(_raw_public(pub))


def load_public_b64(s: str) -> X25519PublicKey:
    raw = _b64d(s, "public key")
    if len(raw) != 32:
        raise SealingError(f"public key: expected 32 bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class SealedBox:
    recipient_key_id: str  # e.g. "kab-paser#seal-1"
    ephemeral_public: str  # base64url, no padding
    nonce: str  # base64url
    ciphertext: str  # base64url (includes the Poly1305 tag)
    alg: str = SEAL_ALG

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> SealedBox:
        """Validate shape, encodings and lengths; SealingError on anything else."""
        if not isinstance(d, Mapping):
            raise SealingError("sealed box must be an object")
        required = {"recipient_key_id", "ephemeral_public", "nonce", "ciphertext"}
        missing = required - d.keys()
        unknown = d.keys() - required - {"alg"}
        if missing or unknown:
            raise SealingError(
                f"sealed box: missing fields {sorted(missing)}, unknown fields {sorted(map(str, unknown))}"
            )
        alg = d.get("alg", SEAL_ALG)
        if alg != SEAL_ALG:
            raise SealingError(f"sealed box: unsupported alg {alg!r}")
        key_id = d["recipient_key_id"]
        if not isinstance(key_id, str) or not key_id:
            raise SealingError("sealed box: recipient_key_id must be a non-empty string")
        if len(_b64d(d["ephemeral_public"], "ephemeral_public")) != 32:
            raise SealingError("sealed box: ephemeral_public must be 32 bytes")
        if len(_b64d(d["nonce"], "nonce")) != _NONCE_LEN:
            raise SealingError(f"sealed box: nonce must be {_NONCE_LEN} bytes")
        if len(_b64d(d["ciphertext"], "ciphertext")) < _TAG_LEN:
            raise SealingError("sealed box: ciphertext shorter than the tag")
        return cls(key_id, d["ephemeral_public"], d["nonce"], d["ciphertext"], alg)


def _context(ticket_id: str, recipient_key_id: str) -> tuple[bytes, bytes]:
    """(HKDF info, AEAD associated data) for one ticket and recipient key."""
    if not isinstance(ticket_id, str) or not ticket_id:
        raise SealingError("ticket_id must be a non-empty string")
    if not isinstance(recipient_key_id, str) or not recipient_key_id:
        raise SealingError("recipient_key_id must be a non-empty string")
    info = SEAL_CONTEXT + b"|" + ticket_id.encode("utf-8")
    return info, info + b"|" + recipient_key_id.encode("utf-8")


def _seal_key(shared: bytes, eph_raw: bytes, rcpt_raw: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + rcpt_raw, info=info).derive(shared)


def seal(
    identity: Mapping[str, str],
    *,
    ticket_id: str,
    recipient_key_id: str,
    recipient_public: X25519PublicKey,
    rand: Rand = os.urandom,
) -> SealedBox:
    """Encrypt ``identity`` so only the holder of ``recipient_key_id`` can read it."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in identity.items()):
        raise SealingError("identity fields and values must be strings")
    info, ad = _context(ticket_id, recipient_key_id)
    plaintext = json.dumps(dict(identity), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    eph = X25519PrivateKey.from_private_bytes(rand(32))
    eph_raw, rcpt_raw = _raw_public(eph.public_key()), _raw_public(recipient_public)
    try:
        shared = eph.exchange(recipient_public)
    except ValueError:
        raise SealingError("recipient public key is invalid (low-order point)") from None
    key = _seal_key(shared, eph_raw, rcpt_raw, info)
    nonce = rand(_NONCE_LEN)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, plaintext.encode("utf-8"), ad)
    return SealedBox(recipient_key_id, _b64e(eph_raw), _b64e(nonce), _b64e(ciphertext))


def open_sealed(
    box: SealedBox, *, ticket_id: str, private_keys: Mapping[str, X25519PrivateKey]
) -> dict[str, str]:
    """Decrypt a box with the private key named by ``box.recipient_key_id``."""
    if box.alg != SEAL_ALG:
        raise SealingError(f"unsupported sealing alg {box.alg!r}")
    private = private_keys.get(box.recipient_key_id)
    if private is None:
        raise SealingError(f"no private key for {box.recipient_key_id!r}")
    info, ad = _context(ticket_id, box.recipient_key_id)
    eph_raw = _b64d(box.ephemeral_public, "ephemeral_public")
    nonce = _b64d(box.nonce, "nonce")
    ciphertext = _b64d(box.ciphertext, "ciphertext")
    if len(eph_raw) != 32 or len(nonce) != _NONCE_LEN:
        raise SealingError(_AUTH_FAILED)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        key = _seal_key(shared, eph_raw, _raw_public(private.public_key()), info)
        plaintext = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, ad)
    except (InvalidTag, ValueError):
        raise SealingError(_AUTH_FAILED) from None
    try:
        identity = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SealingError("sealed identity is not valid JSON") from None
    if not isinstance(identity, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in identity.items()
    ):
        raise SealingError("sealed identity is not an object of strings")
    return identity


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise SealingError("passphrase must be a non-empty string")
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def wrap_private_key(private: X25519PrivateKey, passphrase: str, *, rand: Rand = os.urandom) -> dict:
    """Encrypt a sealing private key under a passphrase; returns a JSON-able dict."""
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    salt = rand(16)
    kek = _kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    nonce = rand(_NONCE_LEN)
    return {
        "alg": WRAP_ALG,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64e(salt)},
        "nonce": _b64e(nonce),
        "ciphertext": _b64e(ChaCha20Poly1305(kek).encrypt(nonce, raw, WRAP_AD)),
        "public": public_b64(private.public_key()),
    }


def unwrap_private_key(wrapped: Mapping, passphrase: str) -> X25519PrivateKey:
    """Inverse of wrap_private_key; SealingError on a wrong passphrase or bad dict."""
    try:
        if wrapped["alg"] != WRAP_ALG or wrapped["kdf"]["name"] != "scrypt":
            raise SealingError(f"unsupported key wrapping {wrapped['alg']!r}")
        kdf = wrapped["kdf"]
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        salt = _b64d(kdf["salt"], "kdf.salt")
        nonce = _b64d(wrapped["nonce"], "nonce")
        ciphertext = _b64d(wrapped["ciphertext"], "ciphertext")
    except (KeyError, TypeError):
        raise SealingError("wrapped key: malformed") from None
    ints = all(type(x) is int for x in (n, r, p))
    if not ints or n < 2 or n & (n - 1) or not (1 <= r <= 32 and 1 <= p <= 16):
        raise SealingError("wrapped key: unsupported or out-of-range parameters")
    if 128 * r * n > _MAX_SCRYPT_MEMORY or len(nonce) != _NONCE_LEN:
        raise SealingError("wrapped key: unsupported or out-of-range parameters")
    try:
        raw = ChaCha20Poly1305(_kek(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, WRAP_AD)
    except InvalidTag:
        raise SealingError("wrong passphrase or tampered wrapped key") from None
    if len(raw) != 32:
        raise SealingError("wrapped key: wrong private key length")
    private = X25519PrivateKey.from_private_bytes(raw)
    if "public" in wrapped and wrapped["public"] != public_b64(private.public_key()):
        raise SealingError("wrapped key: stored public key does not match the private key")
    return private
