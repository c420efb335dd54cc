"""``simpul verify``: re-hash the local log and check its chains and signatures.

Every stored event is re-hashed from its stored bytes and its signature checked
against the author's key (our own key ring, or the directory for peers). Each
author's events must link by ``prev``; our own chain must have no gap. The
report names every event that fails.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.errors import IntegrityError, ValidationError
from node.keys import KeyRing, load_signing_public
from schemas.events import Event


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _keys(tx, ring: KeyRing) -> dict[str, Ed25519PublicKey]:
    keys = {k: v.public_key() for k, v in ring.signing.items()}
    for row in tx.node_keys():
        if row["kind"] == "signing" and row["key_id"] not in keys:
            keys[row["key_id"]] = load_signing_public(row["public"])
    return keys


def verify_log(storage, ring: KeyRing, page: int = 2000) -> VerifyReport:
    report = VerifyReport()
    with storage.read() as tx:
        keys = _keys(tx, ring)
        authors = tx.event_authors()
    for author in authors:
        prev_seq, prev_id, after = 0, None, 0
        while True:
            with storage.read() as tx:
                rows = tx.events_by_author(author, after_seq=after, limit=page)
            if not rows:
                break
            for seq, raw in rows:
                after = seq
                report.checked += 1
                try:
                    event = Event.from_wire(json.loads(raw))
                except (ValueError, ValidationError) as exc:
                    report.problems.append(f"{author} seq {seq}: stored event is unreadable: {exc}")
                    prev_seq, prev_id = seq, None
                    continue
                key = keys.get(event.key)
                if key is None:
                    report.problems.append(f"event {event.id}: unknown signing key {event.key}")
                else:
                    try:
                        event.verify(key)
                    except IntegrityError as exc:
                        report.problems.append(str(exc))
                if event.seq != seq:
                    report.problems.append(f"event {event.id}: stored seq {seq} differs from signed seq {event.seq}")
                if seq == prev_seq + 1 and prev_id is not None and event.prev != prev_id:
                    report.problems.append(f"event {event.id}: chain broken, prev is {event.prev}, expected {prev_id}")
                if author == ring.node_id and seq != prev_seq + 1:
                    report.problems.append(f"event {event.id}: gap in own chain before seq {seq}")
                prev_seq, prev_id = seq, event.id
    return report
