"""Merge rules for concurrent events: who owns what, and what no rule settles.

Every replica computes a ticket's state from the same set of events, so the
rules here are pure functions of that set; delivery order and duplication
cannot change the outcome.

Ownership (``authorised``):

==================  ==========================================================
event               may be authored by
==================  ==========================================================
verified            the hub, or the origin (its admin_instansi verifies)
edited, archived    the hub (it edits title and text, and archives)
routed              the hub; or the origin, to an institution it hosts itself
accepted, status_changed, followed_up, closed, returned
                    the holder at that point (it owns its own progression)
reporter_replied, identity_sealed
                    the origin (it owns the reporter's text and replies)
reopened            the origin (reporter) or the holder
conflict_resolved   the hub, the origin or the holder (an admin on either side)
==================  ==========================================================

An event that fails ownership is kept in the log but never applied. Status
moves forward only (node.lifecycle); a stale event that would move it back is
skipped. Reopening is an explicit event.

What the rules cannot settle (``find_conflicts``), for events that are
concurrent (neither is an ancestor of the other through ``parents``):

- ``archive_vs_progress``: the hub archives while the holder progresses
  (accepts, follows up, closes);
- ``reroute_vs_progress``: the hub reroutes while the holder progresses;
- ``competing_routes``: two routings to different institutions (two
  institutions claim the ticket).

Each becomes one conflict record with two sides. Its provisional winner is
chosen the same way on every replica, as CouchDB does: the side whose newest
event sorts last by (hybrid clock, author, id). The losing side's events are
left out of the provisional state but stay in the log and in the record. A
``conflict_resolved`` event (an admin's choice of side ``A``/``B``, or a merged
state) replaces the provisional choice everywhere it replicates.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from schemas.events import Event

PROGRESS = frozenset({"accepted", "status_changed", "followed_up", "closed"})
HUB_ONLY = frozenset({"edited", "archived"})
HOLDER_ONLY = frozenset({"accepted", "status_changed", "followed_up", "closed", "returned"})
ORIGIN_ONLY = frozenset({"reporter_replied", "identity_sealed"})


def order_key(event: Event) -> tuple[str, str, str]:
    return (event.hlc, event.author, event.id)


def authorised(event: Event, *, hub: str | None, origin: str, holder: str | None) -> str | None:
    """None if ``event``'s author may author it now, else the reason it may not."""
    t, a = event.type, event.author
    if t == "verified":
        ok = a in (hub, origin)
    elif t in HUB_ONLY:
        ok = a == hub
    elif t == "routed":
        ok = a == hub or (a == origin and event.payload.get("node") == a)
    elif t in HOLDER_ONLY:
        ok = holder is not None and a == holder
    elif t in ORIGIN_ONLY:
        ok = a == origin
    elif t == "reopened":
        ok = a in (origin, holder)
    elif t == "conflict_resolved":
        ok = a in (hub, origin, holder)
    else:
        ok = True
    return None if ok else f"{a} does not own '{t}' on this ticket"


def ancestors(events: Sequence[Event]) -> dict[str, frozenset[str]]:
    """Each event's ancestors among ``events`` (parents not held are ignored)."""
    by_id = {e.id: e for e in events}
    memo: dict[str, frozenset[str]] = {}
    for event in sorted(events, key=order_key):  # parents sort before children
        acc: set[str] = set()
        for p in event.parents:
            if p in by_id:
                acc.add(p)
                acc |= memo.get(p, frozenset())
        memo[event.id] = frozenset(acc)
    return memo


@dataclass(frozen=True)
class ConflictSpec:
    id: str
    kind: str
    sides: tuple[tuple[str, ...], tuple[str, ...]]   # event ids of side A and side B
    provisional_winner: str                         # "A" or "B"
    detected_hlc: str
    legacy_id: str = ""                             # the id it had when rivals counted in it (see ``_spec``)


def _holder_seen(anc: frozenset[str], by_id: dict[str, Event],
                 passed_over: frozenset[str] = frozenset()) -> str | None:
    """The holder an event whose ancestors are ``anc`` saw: the node of the newest routing among them, or None
    after a return; a routing or return in ``passed_over`` does not count (``find_conflicts``)."""
    moves = (by_id[i] for i in anc if by_id[i].type in ("routed", "returned") and i not in passed_over)
    last = max(moves, key=order_key, default=None)
    return None if last is None or last.type == "returned" else last.payload.get("node")


def holder_after(events: Sequence[Event]) -> str | None:
    """The holder an event appended after ``events`` is judged by (``authorised``): its ancestors are all of
    them, so the node of the newest routing, or None after a return. In a routing conflict this is the
    newest routing's node even while the provisional winner keeps the ticket elsewhere."""
    by_id = {e.id: e for e in events}
    return _holder_seen(frozenset(by_id), by_id)


def find_conflicts(events: Sequence[Event], hub: str | None,
                   passed_over: frozenset[str] = frozenset()) -> list[ConflictSpec]:
    """The conflicts among ``events`` that no rule settles.

    An event is the holder's progress if its author held the ticket as it saw it: the node of the newest
    routing among its ancestors, or none after a return, passing over those in ``passed_over``. The fold
    (``node.ticket``) looks twice: first passing over none, then, if it left routings or returns out (the
    losing side of a conflict) or ignored them (not allowed then, or not their author's), passing over
    those. A holder that kept its ticket against a rerouting goes on progressing after it saw the
    rerouting, and an archive concurrent with that progress is a conflict too. (Judging each event by the
    fold of its ancestors says that too, but costs a fold per event: a ticket of 600 follow-ups after a
    conflict took 25 s to fold, against 0.1 s so.)"""
    by_id = {e.id: e for e in events}
    anc = ancestors(events)
    concurrent = lambda x, y: x.id not in anc[y.id] and y.id not in anc[x.id]  # noqa: E731
    progress = [e for e in events if e.type in PROGRESS and e.author == _holder_seen(anc[e.id], by_id, passed_over)]
    routes = [e for e in events if e.type == "routed" and e.author == hub]
    specs: list[ConflictSpec] = []
    for anchor in sorted((e for e in events if e.type == "archived" and e.author == hub), key=order_key):
        rivals = [p for p in progress if p.author != hub and concurrent(anchor, p)]
        if rivals:
            specs.append(_spec("archive_vs_progress", (anchor,), rivals, anchored=True))
    for anchor in sorted(routes, key=order_key):
        rivals = [p for p in progress if p.author != hub and concurrent(anchor, p)
                  and p.author != anchor.payload.get("node")]
        if rivals:
            specs.append(_spec("reroute_vs_progress", (anchor,), rivals, anchored=True))
    all_routes = sorted((e for e in events if e.type == "routed"), key=order_key)
    for i, a in enumerate(all_routes):
        for b in all_routes[i + 1:]:
            if a.payload.get("institution") != b.payload.get("institution") and concurrent(a, b):
                specs.append(_spec("competing_routes", (a,), (b,)))
    return specs


def _spec(kind: str, side_a: Iterable[Event], side_b: Iterable[Event], *, anchored: bool = False) -> ConflictSpec:
    """A conflict, its id a digest of its kind and sides. ``anchored``: the hub's one event (an archive, a
    routing) against every concurrent progress of the holder, whose id is the anchor's alone. Before, it
    counted the rivals too, so one more rival arriving late (a close sent before the district saw the
    archive) made it another conflict: the admin's resolution settled nothing any more, and the ticket
    flipped. A resolution that names the id the conflict had then (``legacy_id``) still settles it."""
    a = tuple(sorted(side_a, key=order_key))
    b = tuple(sorted(side_b, key=order_key))
    ids = (tuple(e.id for e in a), tuple(e.id for e in b))
    legacy = hashlib.sha256((kind + ":" + ",".join(ids[0]) + "|" + ",".join(ids[1])).encode()).hexdigest()[:32]
    digest = hashlib.sha256((kind + ":" + ",".join(ids[0]) + "|*").encode()).hexdigest()[:32] if anchored else legacy
    winner = "A" if order_key(a[-1]) > order_key(b[-1]) else "B"
    return ConflictSpec(id=digest, kind=kind, sides=ids, provisional_winner=winner,
                        detected_hlc=max(a[-1].hlc, b[-1].hlc), legacy_id=legacy if anchored else "")


def resolutions(events: Sequence[Event], *, hub: str | None, origin: str,
                specs: Sequence[ConflictSpec] = ()) -> dict[str, Event]:
    """The settling event per conflict id (the last by order if several), from an author who may settle
    it: the hub, the origin, or the holder as its author saw the ticket. Anyone else's is left out here
    as ``authorised`` leaves it out of the state: else any node could pick a conflict's winner. A
    resolution naming a conflict of ``specs`` by its ``legacy_id`` counts under its id."""
    candidates = sorted((e for e in events if e.type == "conflict_resolved"), key=order_key)
    if not candidates:
        return {}
    current = {spec.legacy_id: spec.id for spec in specs if spec.legacy_id}
    by_id = {e.id: e for e in events}
    anc = ancestors(events)
    out: dict[str, Event] = {}
    for e in candidates:
        if authorised(e, hub=hub, origin=origin, holder=_holder_seen(anc[e.id], by_id)) is None:
            named = e.payload.get("conflict", "")
            out[current.get(named, named)] = e
    return out


def excluded_events(specs: Sequence[ConflictSpec], settled: dict[str, Event]) -> set[str]:
    """Events left out of the state: each conflict's losing side."""
    out: set[str] = set()
    for spec in specs:
        res = settled.get(spec.id)
        winner = res.payload.get("winner") if res is not None else spec.provisional_winner
        if winner == "A":
            out.update(spec.sides[1])
        elif winner == "B":
            out.update(spec.sides[0])
        # "merged": both sides' events stay; the resolution's explicit state applies after them
    return out
