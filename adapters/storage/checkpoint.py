"""WAL checkpoints on a thread of their own, off the database thread.

In WAL mode SQLite appends each commit to the write-ahead log, and by default
the connection that commits copies the log back into the database file (a
checkpoint, with its fsync) whenever the log passes 1,000 pages. On a node that
is the database thread, the serial stage of intake and of a receive: at 128
complaints a commit, one commit in three or four paid for a checkpoint, and
commits took 10-11 ms on average against 2.5-3 ms without (in-process, 6,000
complaints).

So a serving node checkpoints from a thread of its own, with its own
connection: every ``EVERY_S`` it runs a PASSIVE checkpoint, which never waits
for or blocks the writer or the readers (it copies what no reader still needs,
and the next one copies the rest). The writer's own automatic checkpoint stays
as a backstop at ``BACKSTOP_PAGES`` (``SqlStorage`` sets it on every SQLite
connection): a node whose checkpointer is not running, a CLI command writing
while nothing serves, or a checkpointer that falls behind still keeps the log
bounded. A command's last connection to close checkpoints the log, as SQLite
always does.

Measured with ``scripts/bench --skip drain,catchup --concurrency 128 --intake
10000``, seven alternating pairs on 2 cores: 1,085 complaints/s on average
against 1,004 with the writer checkpointing (higher in six pairs of seven).
20,000-event drains moved within their noise.

Every second, not every half second: a hub storing a drain commits about eight
batches a second, and each one dirties much the same pages again (the leaves
of the index on event ids, which are hashes, take rows everywhere). A
checkpoint copies a page once however often it changed since the last, so
checkpoints half as often copied well under half as much: in a 100,000-event
drain the hub's checkpoint thread spent 1.6 us of CPU an event against 5.2.
While a drain commits, the log never restarts (a restart needs the whole log
copied when a transaction begins), so it grows until the writer checkpoints it
itself at the backstop: 20,000 pages, reached every three seconds or so of
such a drain, instead of 10,000 every second and a half.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)
EVERY_S = 1.0          # between two background checkpoints
BACKSTOP_PAGES = 20_000  # the writer checkpoints itself past this many log pages (80 MB at 4 KB a page)


class WalCheckpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` every ``every_s`` on its own connection
    from ``engine`` (a SQLite engine of ``SqlStorage``)."""

    def __init__(self, engine, every_s: float = EVERY_S):
        self.engine = engine
        self.every_s = every_s
        self.last: tuple[int, int, int] | None = None   # the last checkpoint's (busy, log pages, pages copied)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "WalCheckpointer":
        self._thread = threading.Thread(target=self._run, name="simpul-checkpoint", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _checkpoint(self, raw) -> None:
        """One PASSIVE checkpoint on the DB-API connection ``raw``."""
        self.last = tuple(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def _run(self) -> None:
        failing = False   # a failure is logged once, not at every round, until a checkpoint succeeds again
        try:
            raw = self.engine.raw_connection()   # (autocommit: the engine's connections emit BEGIN themselves)
        except Exception as exc:  # noqa: BLE001 -- the writer's backstop still bounds the log
            log.warning("no background WAL checkpoints (the writer makes them): %s", exc)
            return
        try:
            while not self._stop.wait(self.every_s):
                try:
                    self._checkpoint(raw.driver_connection)
                    failing = False
                except Exception as exc:  # noqa: BLE001 -- as above
                    if not failing:
                        log.warning("background WAL checkpoint failed (retried every %.1f s): %s", self.every_s, exc)
                    failing = True
        finally:
            raw.close()
