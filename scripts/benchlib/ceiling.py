"""The machine's own ceiling for the work a sync does: verifying and inserting.

- Ed25519 verifications per second on one core, over event-sized messages, for
  about two seconds: with libsodium, which checks events' signatures in the
  node (``schemas.events.signature_valid``), and, for reference, with OpenSSL
  (``cryptography``), which the design's figures and the node before it used.
- Batched inserts per second into the real ``events`` table (schema made by
  the node's migrations) on a SQLite file in WAL mode, batches of 500 rows per
  transaction through SQLAlchemy Core, as the storage layer writes them; with
  ``scripts/bench --postgres``, on the hub's PostgreSQL too.

The benchmark prints its figures as ratios to these, so that a slower or busier
machine shows up as lower ceilings rather than as a worse design. On the
machine this was written on (a 2-core VM) the verification ceiling moves by up
to 2x from one minute to the next, so it is also taken right before and right
after each drain (``around``), with the nodes paused, and a drain's ratio is to
the mean of those two.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path


def verify_per_s(seconds: float = 2.0, library: str = "libsodium") -> float:
    """Verifications per second on this thread with the node's verifier (``libsodium``) or ``openssl``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from schemas.events import signature_valid
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    raw = pub.public_bytes_raw()
    msgs = [json.dumps({"ticket": os.urandom(16).hex(), "seq": i, "payload": {"text": "x" * 600}}).encode()
            for i in range(256)]
    sigs = [key.sign(m) for m in msgs]
    if library == "openssl":
        check = lambda s, m: pub.verify(s, m) is None  # noqa: E731 -- (raises if not)
    else:
        check = lambda s, m: signature_valid(raw, s, m)  # noqa: E731
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for m, s in zip(msgs, sigs):
            if not check(s, m):
                raise RuntimeError("a good signature did not verify")
        n += len(msgs)
    return n / (time.perf_counter() - t0)


def insert_per_s(rows: int = 50_000, batch: int = 500, url: str | None = None) -> float:
    """Rows per second into the events table, ``batch`` rows per transaction (SQLAlchemy Core), on a new
    SQLite file in WAL mode, or on the empty database at ``url``."""
    from adapters.storage import SqlStorage, migrate
    from adapters.storage.tables import EventRow
    E = EventRow.__table__
    tmp = Path(tempfile.mkdtemp(prefix="simpul-ceiling-"))
    try:
        storage = SqlStorage(url or f"sqlite:///{tmp / 'ceiling.db'}")
        migrate.upgrade(storage)
        raw = json.dumps({"payload": {"text": "Jalan desa rusak berat dan berlubang. " * 12}})
        now = time.time()
        data = [{"id": hashlib.sha256(str(i).encode()).hexdigest(), "ticket": hashlib.md5(str(i // 6).encode())
                 .hexdigest(), "author": "kab-paser", "seq": i + 1, "hlc": f"{1764270000000 + i:016d}.0000",
                 "type": "followed_up", "raw": raw, "received_at": now} for i in range(rows)]
        t0 = time.perf_counter()
        for i in range(0, rows, batch):
            with storage.transaction() as tx:
                tx.conn.execute(E.insert(), data[i:i + batch])
        rate = rows / (time.perf_counter() - t0)
        storage.dispose()
        return rate
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def around(pids: list[int], seconds: float = 1.0) -> float:
    """The verification ceiling now, with the processes ``pids`` stopped (SIGSTOP) while it is measured."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        return verify_per_s(seconds)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
