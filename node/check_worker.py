"""Checking a hub's large pushes in a worker process.

A hub's database thread stores every batch, one at a time: it is a drain's
serial stage. Checking a batch was about half of its work there (parsing,
canonical bytes and hashing in Python, then Ed25519 in libsodium). A thread
beside it does not help: the GIL's hand-overs cost more than they save
(node.federation). A process does. A push's body goes to the worker as soon
as the push is authenticated, is checked there while the batch ahead of it is
stored, and the database thread takes the events that passed from the
fields the event loop parsed and the canonical JSON the worker made, about
1.5 us each (``Event.checked``). In three alternating pairs of
20,000-event drains on a 2-core VM, a hub drained 31% more events per second
with the worker (3,424-3,546 against 2,542-2,793), for 8% more CPU across its
processes (``scripts/PERFORMANCE.md``).

What needs the directory's institutions or the database stays on the database
thread: that a district routes only to institutions it hosts, and the chain,
equivocation and duplicate checks of the transaction. The valid signing keys a
batch names are resolved before it is sent (``KeyDirectory``'s cache, so a
revocation takes effect within ``KEY_CACHE_S``, as on the database thread). An
event stored already is verified again there, which changes nothing.

One worker, started with ``spawn`` (a fresh interpreter: nothing of the node's
threads, sockets or database is inherited). It takes about 30 MB, and
multiprocessing's resource tracker beside it about 13 MB. If the worker dies,
the batches it held are checked on the database thread, and the next push
starts another. If the node dies (SIGKILL, the OOM killer), the worker sees
its parent gone within a second and exits, and the tracker with it: nothing
else would stop them. Small batches, pulls and a district's receives never
use it.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.checks import item_id, shaped, signed_by
from node.errors import IntegrityError, ValidationError

log = logging.getLogger(__name__)
PARENT_CHECK_S = 1.0   # how often the worker looks whether its node is still there
WAIT_S = 60.0          # how long an answer is waited for (500 events take ~0.1 s): a worker past it hangs


@dataclass(frozen=True)
class CheckContext:
    """What the worker needs to check a pushed batch: who sent it, this node's role and hub, the time, and
    the valid signing keys the batch names (key id -> (node id, raw public key))."""
    sender: str
    role: str
    hub_id: str
    now_ms: int
    keys: dict


def check_body(body: bytes, ctx: CheckContext) -> list[tuple]:
    """In the worker: each item of the pushed ``body`` as (True, pos, canonical JSON) if it passes every
    check that needs neither the directory's institutions nor the database, else (False, id, reason)."""
    publics = {k: (node, Ed25519PublicKey.from_public_bytes(raw)) for k, (node, raw) in ctx.keys.items()}
    out: list[tuple] = []
    for item in orjson.loads(body)["items"]:
        try:
            pos, event = shaped(item, ctx.sender, ctx.role, ctx.hub_id, ctx.now_ms)
            signed_by(event, publics.get(event.key), {})
            out.append((True, pos, event.canonical_wire()))
        except (ValidationError, IntegrityError) as exc:
            out.append((False, item_id(item), str(exc)))
    return out


def _watch_parent(parent: int) -> None:
    """In the worker, at its start: exit once the node that started it is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)
    threading.Thread(target=watch, name="simpul-parent-watch", daemon=True).start()


def _loaded() -> None:
    """(Run in the worker to start it: its imports are done once it answers.)"""


class CheckWorker:
    """The worker process, started on first use (or by ``warm``), started again after it died."""

    def __init__(self):
        self._pool: ProcessPoolExecutor | None = None

    def warm(self) -> None:
        """Start the worker now, so that the first large push does not wait for its start-up."""
        self.submit(_loaded)

    def submit(self, fn, *args) -> Future | None:
        """``fn(*args)`` in the worker, or None if the worker cannot be started (the caller checks here)."""
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_watch_parent, initargs=(os.getpid(),))
            return self._pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            self.lost(exc)
            return None

    def answer(self, future: Future, what: str):
        """What ``future`` (from ``submit``) returned, or None if the worker failed to give it: one that died
        or hangs is replaced (``lost``); an exception the work itself raised leaves the worker as it is."""
        try:
            return future.result(timeout=WAIT_S)
        except (BrokenProcessPool, TimeoutError) as exc:
            self.lost(exc)
        except Exception as exc:   # (the caller does the work itself, and meets it again there, or not)
            log.warning("checking %s in the worker process raised %r; checking it on the database thread", what,
                        exc)
        return None

    def lost(self, exc: BaseException) -> None:
        """The worker failed (``exc``): the next ``submit`` starts another."""
        log.warning("the check worker process failed (%s); checking on the database thread meanwhile", exc)
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()   # (one that hangs would otherwise stay; the pool has no public way)
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
