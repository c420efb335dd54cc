"""Hybrid logical clock (Kulkarni et al.): wall-clock milliseconds plus a counter.

The value is rendered ``WWWWWWWWWWWWWWWW.CCCC`` (16 + 1 + 4 characters) so that
it sorts as text in SQL. Every local event takes ``tick()``; every received
event is passed to ``observe()`` so that a node's next event is always later
than everything it has seen. The wall clock is injected for tests.

A remote clock is trusted only so far: a received event whose clock is more
than ``MAX_AHEAD_MS`` ahead of this node's wall clock is refused (by the
Receiver, ``too_far_ahead``), and ``observe`` ignores such a value. Otherwise
one event from a node with a wildly wrong clock, or a forged one, would drag
every clock of the federation into its future for good, and past the fixed
width, where no node accepts a timestamp any more.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


def format_hlc(wall_ms: int, counter: int) -> str:
    return f"{wall_ms:016d}.{counter:04d}"


def parse_hlc(value: str) -> tuple[int, int]:
    wall, _, counter = value.partition(".")
    return int(wall), int(counter)


MAX_AHEAD_MS = 10 * 60 * 1000


def wall_ms_now() -> int:
    return int(time.time() * 1000)


def too_far_ahead(value: str, wall_ms: int) -> bool:
    """Is the clock ``value`` more than MAX_AHEAD_MS ahead of ``wall_ms``?"""
    return parse_hlc(value)[0] > wall_ms + MAX_AHEAD_MS


class HybridClock:
    def __init__(self, wall: Callable[[], int] = wall_ms_now, last: str | None = None):
        self._wall = wall
        self._last = parse_hlc(last) if last else (0, 0)
        self._lock = threading.Lock()

    def ahead_ms(self) -> int:
        """How far the last clock value is ahead of the wall clock (0 if it is not): a node whose clock ran
        ahead, and was set back, goes on stamping from there, and peers refuse what it signs while the
        stamp is more than MAX_AHEAD_MS ahead of theirs."""
        return max(0, self._last[0] - self._wall())

    def tick(self) -> str:
        with self._lock:
            now = self._wall()
            wall, counter = self._last
            self._last = (now, 0) if now > wall else (wall, counter + 1)
            if self._last[1] > 9999:  # keep the fixed width: borrow the next millisecond
                self._last = (self._last[0] + 1, 0)
            return format_hlc(*self._last)

    def observe_all(self, remotes: Iterable[str]) -> None:
        """Move the clock to the latest of ``remotes`` (well-formed clock values) that is not more than
        MAX_AHEAD_MS ahead of the wall clock, if it is later. In one step: a receive observes its whole batch,
        and a parse and a lock per event cost a hub about 0.5 us of each. (The values are fixed-width text, so
        comparing them as text compares the clocks.)"""
        limit = format_hlc(self._wall() + MAX_AHEAD_MS, 9999)
        latest = max((r for r in remotes if r <= limit), default=None)
        if latest is not None:
            remote_t = parse_hlc(latest)
            with self._lock:
                if remote_t > self._last:
                    self._last = remote_t

    def observe(self, remote: str) -> None:
        self.observe_all((remote,))
