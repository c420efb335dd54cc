"""Unit tests for node.sealing: identity sealing and passphrase-wrapped keys."""
from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node import sealing
from node.errors import SealingError
from node.sealing import (
    SealedBox,
    load_public_b64,
    open_sealed,
    public_b64,
    seal,
    unwrap_private_key,
    wrap_private_key,
)

IDENTITY = {
    "name": "Sri Wahyuningsih",
    "nik": "6401044511820001",
    "phone": "+62 812 0000 0101",
    "email": "sri.w@example.id",
}
TICKET = "T-6401-000123"
KEY_1 = "kab-paser#seal-1"
KEY_2 = "kab-paser#seal-2"
DEFAULT_SCRYPT_N = sealing.SCRYPT_N  # captured before the autouse fixture patches it


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(sealing, "SCRYPT_N", 2**4)


@pytest.fixture
def key1():
    return X25519PrivateKey.generate()


def counter_rand():
    """Deterministic 'randomness' so a test can predict every byte."""
    state = {"i": 0}

    def rand(n: int) -> bytes:
        state["i"] += 1
        return bytes((state["i"] * 31 + j) % 256 for j in range(n))

    return rand


def flip(b64: str, index: int = 0, mask: int = 0x01) -> str:
    raw = bytearray(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
    raw[index] ^= mask
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip(key1):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    assert box.alg == "X25519-HKDF-SHA256-ChaCha20Poly1305"
    assert box.recipient_key_id == KEY_1
    assert "Wahyuningsih" not in json.dumps(box.to_dict())
    assert open_sealed(box, ticket_id=TICKET, private_keys={KEY_1: key1}) == IDENTITY


def test_round_trip_through_dict_and_json(key1):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    again = SealedBox.from_dict(json.loads(json.dumps(box.to_dict())))
    assert again == box
    assert open_sealed(again, ticket_id=TICKET, private_keys={KEY_1: key1}) == IDENTITY


def test_non_ascii_identity_round_trips(key1):
    ident = {"name": "Ni Luh Putu Ayu Déwi", "alamat": "Jl. Kandilo No. 3, RT 004"}
    box = seal(ident, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    assert open_sealed(box, ticket_id=TICKET, private_keys={KEY_1: key1}) == ident


def test_each_seal_is_fresh(key1):
    a = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    b = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    assert a.ephemeral_public != b.ephemeral_public and a.ciphertext != b.ciphertext


def test_construction_matches_the_documented_one(key1):
    """Recompute the documented construction by hand from deterministic randomness."""
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1,
               recipient_public=key1.public_key(), rand=counter_rand())
    expected_rand = counter_rand()
    eph = X25519PrivateKey.from_private_bytes(expected_rand(32))
    nonce = expected_rand(12)
    raw = lambda k: k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # noqa: E731
    key = HKDF(
        algorithm=hashes.SHA256(), length=32,
        salt=raw(eph.public_key()) + raw(key1.public_key()),
        info=b"simpul/identity-seal/v1|" + TICKET.encode(),
    ).derive(eph.exchange(key1.public_key()))
    plaintext = json.dumps(IDENTITY, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ad = b"simpul/identity-seal/v1|" + TICKET.encode() + b"|" + KEY_1.encode()
    expected = ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)
    assert box.ephemeral_public == public_b64(eph.public_key())
    assert box.nonce == base64.urlsafe_b64encode(nonce).rstrip(b"=").decode()
    assert box.ciphertext == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "ephemeral_public"])
@pytest.mark.parametrize("index", [0, -1])
def test_tampering_is_detected(key1, field, index):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    bad = replace(box, **{field: flip(getattr(box, field), index)})
    with pytest.raises(SealingError, match="failed authentication"):
        open_sealed(bad, ticket_id=TICKET, private_keys={KEY_1: key1})


def test_ephemeral_bit_ignored_by_x25519_is_still_detected(key1):
    """X25519 masks bit 255 of a public key, so the ECDH result is unchanged;
    the raw ephemeral key in the HKDF salt is what catches this edit."""
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    bad = replace(box, ephemeral_public=flip(box.ephemeral_public, -1, 0x80))
    with pytest.raises(SealingError, match="failed authentication"):
        open_sealed(bad, ticket_id=TICKET, private_keys={KEY_1: key1})


def test_relabelled_key_id_is_detected(key1):
    """Claiming the box was for another key id (that maps to the same key) changes the AD."""
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    with pytest.raises(SealingError, match="failed authentication"):
        open_sealed(replace(box, recipient_key_id=KEY_2), ticket_id=TICKET, private_keys={KEY_2: key1})


def test_wrong_ticket_id(key1):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    with pytest.raises(SealingError, match="failed authentication"):
        open_sealed(box, ticket_id="T-6401-000124", private_keys={KEY_1: key1})


def test_wrong_private_key_under_the_right_id(key1):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    with pytest.raises(SealingError, match="failed authentication"):
        open_sealed(box, ticket_id=TICKET, private_keys={KEY_1: X25519PrivateKey.generate()})


def test_rotation_keeps_old_identities_readable(key1):
    old_box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    key2 = X25519PrivateKey.generate()  # rotate: new seals go to key 2, key 1 is kept
    new_box = seal(IDENTITY, ticket_id="T-2", recipient_key_id=KEY_2, recipient_public=key2.public_key())
    keys = {KEY_1: key1, KEY_2: key2}
    assert open_sealed(old_box, ticket_id=TICKET, private_keys=keys) == IDENTITY
    assert open_sealed(new_box, ticket_id="T-2", private_keys=keys) == IDENTITY


def test_unknown_key_id(key1):
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    with pytest.raises(SealingError, match="no private key for"):
        open_sealed(box, ticket_id=TICKET, private_keys={KEY_2: key1})


@pytest.mark.parametrize("identity", [{"name": 7}, {1: "x"}, {"name": None}])
def test_seal_rejects_non_string_identity(key1, identity):
    with pytest.raises(SealingError):
        seal(identity, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())


def test_seal_rejects_low_order_recipient_key():
    with pytest.raises(SealingError):
        seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1,
             recipient_public=load_public_b64(base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()))


def _valid_box_dict():
    key = X25519PrivateKey.generate()
    return seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key.public_key()).to_dict()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "not a dict",
        lambda d: None,
        lambda d: [],
        lambda d: {},
        lambda d: {k: v for k, v in d.items() if k != "nonce"},
        lambda d: {**d, "extra": 1},
        lambda d: {**d, "alg": "RSA-OAEP"},
        lambda d: {**d, "recipient_key_id": ""},
        lambda d: {**d, "recipient_key_id": 5},
        lambda d: {**d, "nonce": "!!!"},
        lambda d: {**d, "nonce": d["nonce"] + "="},
        lambda d: {**d, "nonce": "AAAA"},
        lambda d: {**d, "ephemeral_public": "AAAA"},
        lambda d: {**d, "ephemeral_public": 12},
        lambda d: {**d, "ciphertext": "AAAA"},
        lambda d: {**d, "ciphertext": None},
    ],
)
def test_from_dict_rejects_garbage(mutate):
    with pytest.raises(SealingError):
        SealedBox.from_dict(mutate(_valid_box_dict()))


def test_from_dict_defaults_alg():
    d = _valid_box_dict()
    del d["alg"]
    assert SealedBox.from_dict(d).alg == "X25519-HKDF-SHA256-ChaCha20Poly1305"


def test_public_key_helpers(key1):
    s = public_b64(key1.public_key())
    assert len(s) == 43 and "=" not in s
    assert public_b64(load_public_b64(s)) == s


@pytest.mark.parametrize("bad", ["", "AAAA", "not base64!", 42, None, "A" * 44])
def test_load_public_b64_rejects_bad_input(bad):
    with pytest.raises(SealingError):
        load_public_b64(bad)


def test_wrap_unwrap_round_trip(key1):
    wrapped = wrap_private_key(key1, "kata sandi rahasia BPJN")
    json.dumps(wrapped)  # JSON-able
    assert wrapped["kdf"] == {"name": "scrypt", "n": 2**4, "r": 8, "p": 1, "salt": wrapped["kdf"]["salt"]}
    assert wrapped["public"] == public_b64(key1.public_key())
    unwrapped = unwrap_private_key(json.loads(json.dumps(wrapped)), "kata sandi rahasia BPJN")
    assert public_b64(unwrapped.public_key()) == public_b64(key1.public_key())
    # the unwrapped key really opens what was sealed to the original
    box = seal(IDENTITY, ticket_id=TICKET, recipient_key_id=KEY_1, recipient_public=key1.public_key())
    assert open_sealed(box, ticket_id=TICKET, private_keys={KEY_1: unwrapped}) == IDENTITY


def test_unwrap_uses_stored_params_not_the_current_constant(key1, monkeypatch):
    wrapped = wrap_private_key(key1, "pw-lama")
    monkeypatch.setattr(sealing, "SCRYPT_N", 2**5)
    assert public_b64(unwrap_private_key(wrapped, "pw-lama").public_key()) == wrapped["public"]


def test_default_scrypt_cost_is_documented_value():
    assert DEFAULT_SCRYPT_N == 2**15


def test_wrong_passphrase(key1):
    wrapped = wrap_private_key(key1, "benar")
    with pytest.raises(SealingError, match="wrong passphrase"):
        unwrap_private_key(wrapped, "salah")


def test_empty_passphrase_is_refused(key1):
    with pytest.raises(SealingError):
        wrap_private_key(key1, "")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda w: {},
        lambda w: "x",
        lambda w: {**w, "alg": "aes"},
        lambda w: {**w, "kdf": {**w["kdf"], "n": 2**40}},
        lambda w: {**w, "kdf": {**w["kdf"], "n": 1000}},
        lambda w: {**w, "kdf": {**w["kdf"], "r": "8"}},
        lambda w: {**w, "kdf": "scrypt"},
        lambda w: {**w, "nonce": "AAAA"},
        lambda w: {**w, "ciphertext": flip(w["ciphertext"])},
        lambda w: {**w, "kdf": {**w["kdf"], "salt": flip(w["kdf"]["salt"])}},
        lambda w: {**w, "public": public_b64(X25519PrivateKey.generate().public_key())},
    ],
)
def test_unwrap_rejects_malformed_or_tampered(key1, mutate):
    wrapped = wrap_private_key(key1, "benar")
    with pytest.raises(SealingError):
        unwrap_private_key(mutate(wrapped), "benar")
