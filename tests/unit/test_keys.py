"""Key rotation with endorsement (node.keys): a new signing key is signed by the one it replaces, and a peer
that trusts the old key accepts the new one only through an unbroken chain of such endorsements."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.keys import KeyRing, endorsed_keys, endorsement_statement, load_signing_public, raw_public
from schemas.events import b64u, unb64u

HUB = "nasional"


@pytest.fixture
def ring(tmp_path):
    return KeyRing.create(HUB, tmp_path / "keys")


def offer(ring: KeyRing) -> tuple[list[dict], list[dict]]:
    """What ``GET /federation/v1/keys`` serves: the public keys and the endorsements."""
    return [k.__dict__ for k in ring.public_keys()], ring.endorsements()


def trusted(ring: KeyRing, *key_ids: str) -> dict[str, str]:
    return {k: raw_public(ring.signing[k].public_key()) for k in key_ids}


def test_a_rotated_key_is_endorsed_by_the_key_it_replaces(ring, tmp_path):
    assert ring.endorsements() == []                         # the first key has nobody to vouch for it
    new = ring.rotate("signing")
    [endorsement] = ring.endorsements()
    assert endorsement["key_id"] == new and endorsement["by"] == f"{HUB}#sig-1"
    public = raw_public(ring.signing[new].public_key())
    load_signing_public(raw_public(ring.signing[f"{HUB}#sig-1"].public_key())).verify(
        unb64u(endorsement["sig"]), endorsement_statement(HUB, new, public))
    assert KeyRing.load(HUB, tmp_path / "keys").endorsements() == [endorsement]   # kept on disk
    ring.rotate("sealing")
    assert len(ring.endorsements()) == 1                     # sealing keys are not endorsed


def test_a_chain_of_rotations_is_followed_from_the_key_trusted_here(ring):
    ring.rotate("signing")
    ring.rotate("signing")
    keys, endorsements = offer(ring)
    learned = endorsed_keys(HUB, trusted(ring, f"{HUB}#sig-1"), keys, endorsements)
    assert sorted(learned) == [f"{HUB}#sig-2", f"{HUB}#sig-3"]
    assert learned[f"{HUB}#sig-3"] == raw_public(ring.signing[f"{HUB}#sig-3"].public_key())
    assert endorsed_keys(HUB, trusted(ring, f"{HUB}#sig-3"), keys, endorsements) == {}   # nothing new


def test_a_key_without_a_valid_chain_is_not_learned(ring):
    ring.rotate("signing")
    keys, endorsements = offer(ring)
    root = trusted(ring, f"{HUB}#sig-1")
    # a broken chain: the endorsement's signature does not match the key offered
    swapped = [dict(k, public=raw_public(Ed25519PrivateKey.generate().public_key()))
               if k["key_id"] == f"{HUB}#sig-2" else k for k in keys]
    assert endorsed_keys(HUB, root, swapped, endorsements) == {}
    # an endorsement signed by a key that is not the one named as endorser
    forger = Ed25519PrivateKey.generate()
    public = next(k["public"] for k in keys if k["key_id"] == f"{HUB}#sig-2")
    forged = [{"key_id": f"{HUB}#sig-2", "by": f"{HUB}#sig-1",
               "sig": b64u(forger.sign(endorsement_statement(HUB, f"{HUB}#sig-2", public)))}]
    assert endorsed_keys(HUB, root, keys, forged) == {}
    # rooted in a key nobody here trusts
    assert endorsed_keys(HUB, {"nasional#sig-9": root[f"{HUB}#sig-1"]}, keys, endorsements) == {}
    # another node's key, even with an endorsement chain of its own
    assert endorsed_keys("kab-paser", root, keys, endorsements) == {}
    # garbage offered alongside a good chain does not stop it
    junk = [*keys, "x", {"key_id": 3}], [*endorsements, None, {"key_id": f"{HUB}#sig-2", "by": 1, "sig": "!"}]
    assert list(endorsed_keys(HUB, root, *junk)) == [f"{HUB}#sig-2"]


def test_a_small_order_key_is_not_learned_even_when_endorsed(ring):
    """The identity point's signatures hold for any message under OpenSSL, which checks request signatures:
    a rotation to it, even signed by the key trusted here, is refused."""
    identity = b64u(bytes([1]) + bytes(31))
    old = ring.signing[f"{HUB}#sig-1"]
    keys = [{"key_id": f"{HUB}#sig-2", "kind": "signing", "public": identity}]
    endorsements = [{"key_id": f"{HUB}#sig-2", "by": f"{HUB}#sig-1",
                     "sig": b64u(old.sign(endorsement_statement(HUB, f"{HUB}#sig-2", identity)))}]
    assert endorsed_keys(HUB, trusted(ring, f"{HUB}#sig-1"), keys, endorsements) == {}


def test_an_unreadable_endorsement_is_a_config_error(ring, tmp_path):
    """Found when the keys are loaded (start-up, or a command), not when a peer asks for them."""
    from node.errors import ConfigError
    ring.rotate("signing")
    (ring.dir / "signing-2.endorsement").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="signing-2.endorsement"):
        KeyRing.load(HUB, tmp_path / "keys")
