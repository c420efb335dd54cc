"""The ticket status lifecycle: one pure table, one pure function.

Forward order: received → verified → dispositioned → in_progress →
followed_up → closed → archived. Two statuses move backwards and only through
explicit events: ``returned`` (bukan wewenang, back to the hub for rerouting)
and ``reopened`` (the reporter replies inside the closing window, or an
operator reopens).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    RECEIVED = "received"
    VERIFIED = "verified"
    DISPOSITIONED = "dispositioned"
    IN_PROGRESS = "in_progress"
    FOLLOWED_UP = "followed_up"
    CLOSED = "closed"
    ARCHIVED = "archived"
    RETURNED = "returned"        # bukan wewenang
    REOPENED = "reopened"


STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in Status)   # in lifecycle order, for lists and checks

S = Status
_OPEN = frozenset(set(S) - {S.ARCHIVED})
# Statuses of a ticket that waits for routing (no holder): the hub routes these, and the disposition queue
# lists those no rule routes.
UNROUTED = frozenset({S.RECEIVED, S.VERIFIED, S.RETURNED})

# event type -> (statuses it may follow, status it leads to; None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset, Status | None]] = {
    "verified": (frozenset({S.RECEIVED}), S.VERIFIED),
    "edited": (frozenset({S.RECEIVED, S.VERIFIED, S.DISPOSITIONED, S.RETURNED}), None),
    "routed": (frozenset({S.RECEIVED, S.VERIFIED, S.RETURNED, S.DISPOSITIONED}), S.DISPOSITIONED),
    "accepted": (frozenset({S.DISPOSITIONED}), S.IN_PROGRESS),
    "status_changed": (frozenset({S.DISPOSITIONED, S.REOPENED}), S.IN_PROGRESS),
    "followed_up": (frozenset({S.DISPOSITIONED, S.IN_PROGRESS, S.FOLLOWED_UP, S.REOPENED}), S.FOLLOWED_UP),
    "returned": (frozenset({S.DISPOSITIONED, S.IN_PROGRESS}), S.RETURNED),
    "reporter_replied": (_OPEN, None),
    "reopened": (frozenset({S.CLOSED, S.FOLLOWED_UP}), S.REOPENED),
    "closed": (frozenset({S.IN_PROGRESS, S.FOLLOWED_UP, S.REOPENED}), S.CLOSED),
    "archived": (_OPEN, S.ARCHIVED),
    "identity_sealed": (frozenset(S), None),
}

# Rank in the forward order, used by the merge rules to tell newer from older.
RANK = {S.RECEIVED: 0, S.VERIFIED: 1, S.DISPOSITIONED: 2, S.RETURNED: 2, S.IN_PROGRESS: 3,
        S.REOPENED: 3, S.FOLLOWED_UP: 4, S.CLOSED: 5, S.ARCHIVED: 6}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    to: Status | None
    reason: str = ""


@functools.lru_cache(maxsize=512)
def decide(current: Status | None, event_type: str) -> Decision:
    """May an event of ``event_type`` follow a ticket in status ``current``? (Remembered: a fold asks for
    every event, and the answer depends on these two values only.)"""
    if event_type == "created":
        return Decision(current is None, S.RECEIVED, "" if current is None else "ticket already exists")
    if current is None:
        return Decision(False, None, "ticket does not exist yet")
    if event_type == "conflict_resolved":
        return Decision(True, current)
    rule = TRANSITIONS.get(event_type)
    if rule is None:
        return Decision(False, None, f"unknown event type {event_type!r}")
    allowed_from, to = rule
    if current not in allowed_from:
        return Decision(False, None, f"'{event_type}' is not allowed when the ticket is '{current.value}'")
    return Decision(True, to if to is not None else current)
