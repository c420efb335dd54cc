"""The node's key ring: Ed25519 signing keys and X25519 sealing keys.

Keys live as PEM files under ``<data_dir>/keys/``: ``signing-<n>.pem`` and
``sealing-<n>.pem`` (PKCS#8, mode 0600). The highest ``n`` is current; older
keys are kept so that history still verifies and identities sealed to an old
key can still be opened. Key ids are ``<node_id>#sig-<n>`` and
``<node_id>#seal-<n>``.

Endorsement: a new signing key is signed by the one it replaces
(``signing-<n>.endorsement``, public). A peer that trusts the old key can
then trust the new one without an operator carrying it over: districts learn
a rotated hub key this way (``endorsed_keys``), since the hub's directory is
signed with the very key they do not know yet.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl.bindings import crypto_core_ed25519_is_valid_point

from node.errors import ConfigError
from schemas.events import b64u, unb64u

_FILE = re.compile(r"^(signing|sealing)-(\d+)\.pem$")
_ENDORSEMENT_FILE = re.compile(r"^signing-(\d+)\.endorsement$")
ENDORSEMENT = "simpul-signing-key-endorsement"


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> str:
    return b64u(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_signing_public(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64u(text))


def check_signing_public(text: str) -> Ed25519PublicKey:
    """``load_signing_public`` for a key offered to us (an enrolment, a rotation): ValueError unless it is a
    point a real key can be. A small-order point, such as the identity, has signatures that hold for every
    message; libsodium, which checks events (schemas/events.py), refuses them, but the request signatures
    would not."""
    raw = unb64u(text)
    if len(raw) != 32 or not crypto_core_ed25519_is_valid_point(raw):
        raise ValueError("not a valid Ed25519 public key (a small-order or non-canonical point)")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_sealing_public(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(unb64u(text))


def holds_keys(keys_dir: Path) -> bool:
    """Does ``keys_dir`` hold a private key file of a node (any other file is not ours to judge)?"""
    return Path(keys_dir).is_dir() and any(_FILE.match(p.name) for p in Path(keys_dir).iterdir())


def _write_private(path: Path, key) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def endorsement_statement(node_id: str, key_id: str, public: str) -> bytes:
    """What the previous signing key signs to endorse ``key_id`` (canonical JSON, RFC 8785)."""
    return rfc8785.dumps({"purpose": ENDORSEMENT, "node": node_id, "key_id": key_id, "public": public})


def endorsed_keys(node_id: str, trusted: Mapping[str, str], offered: Iterable[Mapping],
                  endorsements: Iterable[Mapping]) -> dict[str, str]:
    """The signing keys of ``node_id`` among ``offered`` ({key_id, kind, public}) that a chain of
    ``endorsements`` ({key_id, by, sig}) links to a key in ``trusted`` (key id -> public), as key id ->
    public. Anything else offered (another node's key, a forged or broken chain) is left out."""
    own = re.compile(re.escape(node_id) + r"#sig-\d+")
    keys = {k["key_id"]: k["public"] for k in offered if isinstance(k, Mapping) and k.get("kind") == "signing"
            and isinstance(k.get("key_id"), str) and own.fullmatch(k["key_id"]) and isinstance(k.get("public"), str)}
    offers: dict[str, list[Mapping]] = {}
    for e in endorsements:
        if isinstance(e, Mapping) and e.get("key_id") in keys:
            offers.setdefault(e["key_id"], []).append(e)
    known, learned = dict(trusted), {}
    progress = True
    while progress:
        progress = False
        for key_id, public in keys.items():
            if key_id in known:
                continue
            if any(_vouches(known, e, node_id, key_id, public) for e in offers.get(key_id, ())):
                known[key_id] = learned[key_id] = public
                progress = True
    return learned


def _vouches(known: Mapping[str, str], e: Mapping, node_id: str, key_id: str, public: str) -> bool:
    """Is ``e`` a valid endorsement of (``key_id``, ``public``) by a key in ``known``?"""
    if not isinstance(e.get("by"), str) or e["by"] not in known or not isinstance(e.get("sig"), str):
        return False
    try:
        load_signing_public(known[e["by"]]).verify(unb64u(e["sig"]), endorsement_statement(node_id, key_id, public))
        check_signing_public(public)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class PublicKeyInfo:
    key_id: str
    kind: str          # "signing" | "sealing"
    public: str        # base64url raw key
    current: bool


class KeyRing:
    def __init__(self, node_id: str, keys_dir: Path):
        self.node_id = node_id
        self.dir = Path(keys_dir)
        self.signing: dict[str, Ed25519PrivateKey] = {}
        self.sealing: dict[str, X25519PrivateKey] = {}
        self.signing_key_id = ""
        self.sealing_key_id = ""
        self._endorsements: dict[int, dict] = {}   # signing key number -> its endorsement (read at load)

    @classmethod
    def create(cls, node_id: str, keys_dir: Path) -> "KeyRing":
        Path(keys_dir).mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        ring = cls(node_id, keys_dir)
        if not holds_keys(keys_dir):
            ring.rotate("signing")
            ring.rotate("sealing")
        return cls.load(node_id, keys_dir)

    @classmethod
    def load(cls, node_id: str, keys_dir: Path) -> "KeyRing":
        ring = cls(node_id, keys_dir)
        if not ring.dir.is_dir():
            raise ConfigError(f"keys_dir: {ring.dir} does not exist (run 'simpul init' first)")
        found: dict[str, list[int]] = {"signing": [], "sealing": []}
        for path in ring.dir.iterdir():
            if e := _ENDORSEMENT_FILE.match(path.name):
                try:
                    ring._endorsements[int(e.group(1))] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"keys_dir: {path} is not a readable endorsement") from exc
            m = _FILE.match(path.name)
            if not m:
                continue
            kind, n = m.group(1), int(m.group(2))
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as exc:
                raise ConfigError(f"keys_dir: {path} is not a readable private key") from exc
            if not isinstance(key, Ed25519PrivateKey if kind == "signing" else X25519PrivateKey):
                raise ConfigError(f"keys_dir: {path} is not an {'Ed25519' if kind == 'signing' else 'X25519'} "
                                  "private key")
            found[kind].append(n)
            if kind == "signing":
                ring.signing[f"{node_id}#sig-{n}"] = key
            else:
                ring.sealing[f"{node_id}#seal-{n}"] = key
        if not found["signing"] or not found["sealing"]:
            raise ConfigError(f"keys_dir: {ring.dir} holds no signing or no sealing key")
        ring.signing_key_id = f"{node_id}#sig-{max(found['signing'])}"
        ring.sealing_key_id = f"{node_id}#seal-{max(found['sealing'])}"
        return ring

    def rotate(self, kind: str) -> str:
        """Create the next key of ``kind``; the old ones stay on disk."""
        existing = [int(m.group(2)) for p in self.dir.iterdir() if (m := _FILE.match(p.name)) and m.group(1) == kind]
        n = max(existing, default=0) + 1
        key = Ed25519PrivateKey.generate() if kind == "signing" else X25519PrivateKey.generate()
        _write_private(self.dir / f"{kind}-{n}.pem", key)
        tag = "sig" if kind == "signing" else "seal"
        key_id = f"{self.node_id}#{tag}-{n}"
        if kind == "signing":
            if self.signing_key_id:   # the key it replaces vouches for it
                public = raw_public(key.public_key())
                sig = self.signing_key.sign(endorsement_statement(self.node_id, key_id, public))
                self._endorsements[n] = {"key_id": key_id, "by": self.signing_key_id, "sig": b64u(sig)}
                (self.dir / f"signing-{n}.endorsement").write_text(json.dumps(self._endorsements[n]),
                                                                  encoding="utf-8")
            self.signing[key_id], self.signing_key_id = key, key_id
        else:
            self.sealing[key_id], self.sealing_key_id = key, key_id
        return key_id

    def reload_sealing(self) -> None:
        """Take the sealing keys written since this ring was loaded (``simpul keys rotate --kind sealing``
        beside a running node): boxes sealed to the new key open without a restart. The signing key is
        left as loaded: a new one signs only once it is enrolled, after a restart."""
        fresh = KeyRing.load(self.node_id, self.dir)
        self.sealing.update(fresh.sealing)
        self.sealing_key_id = fresh.sealing_key_id

    def endorsements(self) -> list[dict]:
        """Each signing key's endorsement by the key it replaced ({key_id, by, sig}), oldest first. Read
        with the keys, at load: ``GET /federation/v1/keys`` serves them to anyone, without a disk read."""
        return [self._endorsements[n] for n in sorted(self._endorsements)]

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.signing[self.signing_key_id]

    def public_keys(self) -> list[PublicKeyInfo]:
        out = [PublicKeyInfo(k, "signing", raw_public(v.public_key()), k == self.signing_key_id)
               for k, v in sorted(self.signing.items())]
        out += [PublicKeyInfo(k, "sealing", raw_public(v.public_key()), k == self.sealing_key_id)
                for k, v in sorted(self.sealing.items())]
        return out
