"""``SqlStorage``: the one storage implementation, on SQLite or PostgreSQL.

Queries use SQLAlchemy Core over the SQLModel tables, which keeps hot paths
(batched event inserts, outbox reads) fast. A ``Tx`` is one database
transaction; the services put an event, its ticket projection, its outbox rows
and its inbox row in the same ``Tx`` so that they commit or vanish together.

SQLite runs in WAL mode, and write transactions start with ``BEGIN IMMEDIATE``
so that two writers queue on the lock instead of failing on an upgrade.
PostgreSQL locks the author's chain head row (``SELECT ... FOR UPDATE``) so that
several hub processes can append to one log. Its write transactions also take
one transaction-scoped advisory lock first (``WRITE_LOCK``), the counterpart of
SQLite's ``BEGIN IMMEDIATE``: without it, two transactions could commit their
outbox (and event) rows out of id order -- the later id first -- and a sender
that has already acknowledged past the later id would never send the earlier
one. With one writer at a time, ids become visible in increasing order, which
is what the per-peer checkpoints (``acked``, ``cursor``) rely on. Reads, and
the CPU-heavy signature checks that run before a receive transaction, stay
parallel across processes.

A read transaction (``read``) sees one snapshot of the database, whatever
commits while it runs, and writes nothing. SQLite gives a WAL reader that
snapshot from its first statement; PostgreSQL's default, READ COMMITTED, gives
each statement its own, so its read transactions run at REPEATABLE READ, READ
ONLY. A read that takes several statements (a pull's batch and the queue's last
position, a ticket and its events) then never mixes two states of the
database. (054c7a7 fixed one such read, a pull's answer, that had made a
district receive events twice.) READ ONLY also holds every read to writing
nothing: a write there would skip ``WRITE_LOCK``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import operator
from collections.abc import Iterable, Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from adapters.storage.checkpoint import BACKSTOP_PAGES, EVERY_S as CHECKPOINT_EVERY_S, WalCheckpointer
from adapters.storage.common import pages
from adapters.storage.repo_events import EventRepo
from adapters.storage.repo_sync import SyncRepo
from adapters.storage.repo_directory import DirectoryRepo
from node.errors import StorageError

log = logging.getLogger(__name__)
_SQLITE = sqlite.dialect()
WRITE_LOCK = 0x53494D50  # "SIMP": pg_advisory_xact_lock key serialising write transactions


@functools.lru_cache(maxsize=256)
def _driver_sql(stmt, keys: tuple[str, ...]) -> str | None:
    """``stmt`` as SQLite SQL with one ``?`` per key, in ``keys`` order; None if the statement needs more
    parameters than the rows give (column defaults: SQLAlchemy's own executemany fills those in)."""
    compiled = stmt.compile(dialect=_SQLITE, column_keys=list(keys))
    return compiled.string if tuple(compiled.positiontup) == keys else None


@functools.lru_cache(maxsize=256)
def _select_sql(stmt) -> tuple[str, tuple[str, ...], dict]:
    """``stmt`` as SQLite SQL, the names of its parameters in placeholder order, and the values it binds
    itself (an OFFSET's 0, say)."""
    compiled = stmt.compile(dialect=_SQLITE)
    return compiled.string, tuple(compiled.positiontup), {k: v for k, v in compiled.params.items() if v is not None}


@functools.lru_cache(maxsize=2048)
def _in_sql(stmt, name: str, n: int) -> tuple[str, tuple[str, ...], dict]:
    """``_select_sql`` with the expanding IN parameter ``name`` written out for ``n`` values."""
    sql, order, own = _select_sql(stmt)
    marker = f"(__[POSTCOMPILE_{name}])"
    if sql.count(marker) != 1:
        raise ValueError(f"statement has no single expanding IN parameter {name!r}")
    return sql.replace(marker, "(" + ", ".join("?" * n) + ")"), order, own


def _args(order: tuple[str, ...], own: dict, params: dict) -> tuple:
    """The values for a statement's placeholders: ``params``, else the value the statement binds itself."""
    return tuple(params[k] if k in params else own[k] for k in order)


class _Conn:
    """The transaction's connection as the repositories see it: before any statement runs, the writes
    the transaction has deferred are written, so every read sees them."""

    def __init__(self, raw: Connection, tx: "Tx"):
        self._raw = raw
        self._tx = tx

    def execute(self, *args, **kwargs):
        if self._tx._deferred:
            self._tx.flush()
        return self._raw.execute(*args, **kwargs)

    def __getattr__(self, name):
        if self._tx._deferred:
            self._tx.flush()
        return getattr(self._raw, name)


class Tx(EventRepo, SyncRepo, DirectoryRepo):
    """One transaction; the methods come from the repository mixins.

    Writes on the hot paths (events, ticket projections, chain heads, outbox and inbox rows, audit,
    origin-only rows, identities pending a seal, idempotency rows) are deferred: ``defer`` holds them, and
    they are written with one ``executemany`` per statement just before the next statement of this
    transaction runs, or before it commits. A batch of hundreds of events then costs a few
    statements instead of several per event; an upsert deferred twice for the same key is written once,
    with its last values. Nothing else changes: the transaction still commits or rolls back whole.
    """

    def __init__(self, conn: Connection, dialect: str, write: bool = True):
        self._deferred: dict[tuple, tuple] = {}
        self.write = write
        self.queued_dests: set[str] = set()
        self.queued_here: dict[str, set[str]] = {}   # dest -> event ids queued for it and not written yet
        # A cycle (the connection flushes the transaction's writes) that ``SqlStorage.transaction`` breaks
        # when the transaction ends: a cycle is freed only by the garbage collector, and the transaction's
        # caches (every event of the tickets it read) and its SQLAlchemy connection with it.
        self.conn = _Conn(conn, self)
        self.dialect = dialect

    def select_in(self, stmt, name: str, values: Iterable, *, unwritten: bool = False, **params) -> list:
        """The rows of ``stmt`` for every one of ``values``, bound to its expanding IN parameter ``name`` a
        page at a time (``common.pages``). On SQLite the statement goes to the driver, written out once per
        page length: SQLAlchemy renders an expanding IN again at every execution, which cost three times
        what SQLite takes to answer it (a receive asks several per batch). ``unwritten``: without writing
        the deferred rows first, for a caller that knows none of them can change the answer."""
        rows: list = []
        conn = self.conn._raw if unwritten else self.conn
        for page in pages(values):
            if self.dialect != "sqlite":
                rows += conn.execute(stmt, {**params, name: page})
                continue
            sql, order, own = _in_sql(stmt, name, len(page))
            args: list = []
            for key in order:   # (the page where the IN list goes)
                args += page if key == name else _args((key,), own, params)
            rows += conn.exec_driver_sql(sql, tuple(args))
        return rows

    def rows(self, stmt, **params) -> list:
        """The rows of ``stmt`` bound to ``params``. On SQLite the statement goes to the driver, compiled
        once: SQLAlchemy compiling and processing it again at each execution cost a district reading its
        outbox to push it about 1.5 us an event, of the 6 to 7 that the read takes."""
        if self.dialect != "sqlite":
            return list(self.conn.execute(stmt, params))
        sql, order, own = _select_sql(stmt)
        return self.conn.exec_driver_sql(sql, _args(order, own, params)).fetchall()

    def defer(self, stmt, values: dict, key=None, *, slot=None) -> None:
        """Write ``values`` with ``stmt`` later in this transaction. With ``key``, a later ``defer`` of the
        same statement and key replaces these values (an upsert); without, every row is written, in order.
        ``slot`` names one row set that several statements write (an insert and a delete of the same keys):
        a later ``defer`` in the same slot and key replaces the earlier one whichever its statement, so only
        the last write of a key is made (``flush`` orders rows by statement, not by call)."""
        self._deferred[(stmt if slot is None else slot, key if key is not None else object())] = (stmt, values)

    def flush(self) -> None:
        pending, self._deferred = self._deferred, {}
        self.queued_here = {}   # (written now: the outbox answers for them, positions included)
        groups: dict[tuple, list[dict]] = {}
        for stmt, values in pending.values():
            groups.setdefault((stmt, tuple(values)), []).append(values)
        for (stmt, keys), rows in groups.items():
            # On SQLite, the driver's executemany with the statement compiled once: SQLAlchemy's per-row
            # parameter processing cost more than SQLite's insert (sqlite3 takes our types as they are).
            sql = _driver_sql(stmt, keys) if self.dialect == "sqlite" else None
            if sql is not None:
                row = operator.itemgetter(*keys)  # a tuple for two keys or more, the bare value for one
                args = [row(r) for r in rows] if len(keys) > 1 else [(row(r),) for r in rows]
                self.conn._raw.exec_driver_sql(sql, args)
            else:
                self.conn._raw.execute(stmt, rows)


# SQLite's page cache per connection, in KiB (its default: 2,000). A hub's receive of 1,000 events dirties
# more pages than the default holds, so SQLite wrote some of them out in the middle of the transaction and
# read pages back from the file at every batch. In an in-process replay of a 100,000-event backlog into a hub,
# 8 MiB took its database thread from 3.0 reads and 4.2 writes of the file per event to 0.7 and 2.9; 16 and
# 64 MiB read a little less again (0.56). It is memory a busy connection keeps (a node's database thread
# uses one): in 100,000-event drains the hub peaked 8-13 MB higher and the district 14-16 MB.
CACHE_KIB = 8192


def _sqlite_engine(url: str) -> Engine:
    # (LIFO: the connection used last is taken again, with its page cache warm; the others stay idle and small)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")   # a backstop (adapters.storage.checkpoint)
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write", True) else "BEGIN")

    return engine


@contextlib.contextmanager
def database_errors(what: str = "database error") -> Iterator[None]:
    """The driver's errors as a StorageError, ``refused`` when the database refused what it was given (not
    when it was unreachable, locked or failing)."""
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(f"{what}: {exc.orig if exc.orig else exc}",
                           refused=not isinstance(exc, OperationalError)) from exc


class SqlStorage:
    def __init__(self, url: str):
        self.url = url
        try:
            if url.startswith("sqlite"):
                self.engine = _sqlite_engine(url)
            else:
                self.engine = create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StorageError(f"database_url: cannot use {url!r}: {exc}") from exc
        self.dialect = self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        with database_errors(), self.engine.connect() as conn:
            conn.info["write"] = write
            if not write and self.dialect == "postgresql":   # in the BEGIN; undone when the pool takes it back
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                if write and self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
                tx = Tx(conn, self.dialect, write)
                try:
                    yield tx
                    tx.flush()
                finally:
                    tx.conn._tx = None   # (see Tx.__init__)

    def read(self) -> contextlib.AbstractContextManager[Tx]:
        return self.transaction(write=False)

    def checkpoint_in_background(self, every_s: float = CHECKPOINT_EVERY_S) -> WalCheckpointer | None:
        """On SQLite, start checkpointing the WAL on a thread of its own (``WalCheckpointer``); stop it
        before ``dispose``. None on PostgreSQL, which checkpoints on its own."""
        return WalCheckpointer(self.engine, every_s).start() if self.dialect == "sqlite" else None

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.info["write"] = False
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
