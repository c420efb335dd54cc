"""``simpul verify``: re-hash the local log and check its chains and signatures.

Every stored event is re-hashed from its stored bytes and its signature checked
against a key of its author: the key must be one of our own key ring's (for our
events) or one the directory records for the author (for peers'), and its id
must name the author too. An event signed with another node's key is reported
even when the signature itself verifies.

Each author's events must link by ``prev``, seq 1 having none, and each stored
row must hold the seq and author its signed body says. Of other nodes' chains
we may hold only a part, so only the links we hold are checked. Our own chain
must be whole: no gap, and its last event must be the chain head the node
recorded when it appended it, so that a cut tail is as visible as a gap.

The log is read in pages, one read transaction each, so that a large log does
not hold one transaction open. Our chain head is read in the same transaction
as the page after it, before that page: an event appended meanwhile is then in
the page, so the last head read is never ahead of a complete read.

The report names every event that fails.
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


@dataclass(frozen=True)
class SigningKey:
    owner: str              # the node the ring or the directory records as holding the key
    public: Ed25519PublicKey


def _keys(tx, ring: KeyRing) -> dict[str, SigningKey]:
    keys = {k: SigningKey(ring.node_id, v.public_key()) for k, v in ring.signing.items()}
    for row in tx.node_keys():
        if row["kind"] == "signing" and row["key_id"] not in keys:
            keys[row["key_id"]] = SigningKey(row["node_id"], load_signing_public(row["public"]))
    return keys


def _key_problem(event: Event, keys: dict[str, SigningKey]) -> str | None:
    """Why ``event`` is not signed by a key of its author, or None."""
    key = keys.get(event.key)
    if key is None:
        return f"event {event.id}: unknown signing key {event.key}"
    if key.owner != event.author:
        return (f"event {event.id}: signed with key {event.key} of {key.owner}, "
                f"not a key of its author {event.author}")
    named = event.key.partition("#")[0]
    if named != event.author:
        return (f"event {event.id}: key {event.key} is recorded as its author {event.author}'s, "
                f"but its id names {named}")
    try:
        event.verify(key.public)
    except IntegrityError as exc:
        return str(exc)
    return None


def _check_event(event: Event, seq: int, stored_id: str, author: str, keys: dict[str, SigningKey]) -> list[str]:
    """What is wrong with one stored event by itself (its links are checked by the caller)."""
    problems = []
    problem = _key_problem(event, keys)
    if problem:
        problems.append(problem)
    if stored_id != event.id:   # (the column every lookup goes by: parents, duplicates, a ticket's events)
        problems.append(f"event {event.id}: stored under the id {stored_id!r}")
    if event.author != author:
        problems.append(f"event {event.id}: stored as {author}'s, but signed as {event.author}'s")
    if event.seq != seq:
        problems.append(f"event {event.id}: stored seq {seq} differs from signed seq {event.seq}")
    if event.seq == 1 and event.prev is not None:
        problems.append(f"event {event.id}: seq 1 must start the chain, but its prev is {event.prev}")
    return problems


def _head_problem(author: str, last_seq: int, last_id: str | None, head: tuple[int, str | None]) -> str | None:
    """Why our own chain, ending at (``last_seq``, ``last_id``), does not end at the recorded ``head``."""
    head_seq, head_id = head
    if last_seq < head_seq:
        return (f"{author}: own chain ends at seq {last_seq}, but the recorded chain head is seq {head_seq} "
                f"(event {head_id}): the newest events are missing")
    if last_seq > head_seq:
        return (f"{author}: own chain runs to seq {last_seq} (event {last_id}), past the recorded chain head "
                f"seq {head_seq} (event {head_id})")
    if last_id is not None and last_id != head_id:
        return f"event {last_id}: ends our own chain at seq {last_seq}, but the recorded chain head is {head_id}"
    return None


def _verify_chain(storage, author: str, own: bool, keys: dict[str, SigningKey], page: int,
                  report: VerifyReport) -> None:
    prev_seq, prev_id, after = 0, None, 0
    head: tuple[int, str | None] = (0, None)
    rows: list = [None]
    while rows:
        with storage.read() as tx:
            if own:  # before the page, in its transaction (see the module docstring)
                head = tx.chain_head(author)
            rows = tx.events_by_author(author, after_seq=after, limit=page)
        for seq, stored_id, raw in rows:
            report.checked += 1
            if not isinstance(seq, int):   # (SQLite keeps text in an integer column, and sorts it last)
                report.problems.append(f"{author}: event {stored_id!r} is stored with seq {seq!r}, not a number")
                rows = []
                break
            after = seq
            try:   # a row that breaks the checks is a problem of that row, never the end of the check
                event = Event.from_wire(json.loads(raw))
                report.problems += _check_event(event, seq, stored_id, author, keys)
            except (ValueError, TypeError, RecursionError, ValidationError) as exc:
                report.problems.append(f"{author} seq {seq}: stored event is unreadable: "
                                       f"{exc.__class__.__name__}: {exc}")
                prev_seq, prev_id = seq, None
                continue
            if seq == prev_seq + 1 and prev_id is not None and event.prev != prev_id:
                report.problems.append(f"event {event.id}: chain broken, prev is {event.prev}, expected {prev_id}")
            if own and seq != prev_seq + 1:
                report.problems.append(f"event {event.id}: gap in own chain before seq {seq}")
            prev_seq, prev_id = seq, event.id
    if own:
        problem = _head_problem(author, prev_seq, prev_id, head)
        if problem:
            report.problems.append(problem)


def verify_log(storage, ring: KeyRing, page: int = 2000) -> VerifyReport:
    report = VerifyReport()
    with storage.read() as tx:
        keys = _keys(tx, ring)
        authors = set(tx.event_authors()) | {ring.node_id}  # ours even with no event left: its head is recorded
    for author in sorted(authors):
        _verify_chain(storage, author, author == ring.node_id, keys, page, report)
    return report
