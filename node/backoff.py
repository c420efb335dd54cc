"""Retry and backoff policy: pure functions, called by tenacity and the sync loop.

Short retries (inside one attempt to reach a peer) go through tenacity with
exponential backoff and full jitter. Between attempts, a per-destination
backoff is kept in the database: ``base * 2**(failures-1)``, capped, with
jitter, and reset as soon as the peer makes contact.
"""
from __future__ import annotations

import random
from collections.abc import Callable

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
PERMANENT_STATUS = frozenset({400, 401, 403, 404, 409, 413, 422})


def is_retryable_status(status: int | None) -> bool:
    """None means no answer at all (timeout, refused connection): retry."""
    if status is None:
        return True
    return status in RETRYABLE_STATUS


def next_delay(failures: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures."""
    if failures <= 0:
        return 0.0
    ceiling = min(cap, base * (2 ** min(failures - 1, 30)))
    return ceiling / 2 + rand() * ceiling / 2   # "equal jitter": never less than half the step
