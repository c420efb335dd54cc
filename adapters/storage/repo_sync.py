"""Outbox, inbox, per-peer checkpoints and backoff, dead letters, replay nonces."""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, func, or_, select, text, update

from adapters.storage.common import insert_ignore, pages
from adapters.storage.repo_events import event_to_send
from adapters.storage.tables import DeadLetterRow, EventRow, InboxRow, NonceRow, OutboxRow, PeerRow, TicketRow
from schemas.events import Event

O, P, D, E = OutboxRow.__table__, PeerRow.__table__, DeadLetterRow.__table__, EventRow.__table__
T = TicketRow.__table__

_ENQUEUE = O.insert()
_PEER = select(P).where(P.c.node_id == bindparam("node"))
_PEER_IDS = select(P.c.node_id)
_QUEUED_PAST_ACKED = select(O.c.id).where(O.c.dest == P.c.node_id, O.c.id > P.c.acked).exists()
_SENDABLE = select(P.c.node_id).where(P.c.next_attempt_at <= bindparam("now"), _QUEUED_PAST_ACKED)
_HAS_QUEUED = select(_QUEUED_PAST_ACKED.label("queued")).where(P.c.node_id == bindparam("node"))


def _held_by(node_id):
    """Who should hold a ticket in full, as a condition on its projection: its origin and its current holder."""
    return or_(T.c.origin == node_id, T.c.holder_node == node_id)


_TICKETS_HELD_BY = select(T.c.ticket_id).where(T.c.ticket_id.in_(bindparam("tickets", expanding=True)),
                                               _held_by(bindparam("node")))
_TICKET_EVENT_IDS = select(E.c.ticket, E.c.id).where(E.c.ticket.in_(bindparam("tickets", expanding=True)))
_QUEUED_FOR = select(O.c.event_id).where(O.c.dest == bindparam("dest"), O.c.id > bindparam("after"),
                                         O.c.event_id.in_(bindparam("ids", expanding=True)))
_REFUSED = select(D.c.event_id).where(D.c.dest == bindparam("dest"), D.c.event_id.in_(bindparam("ids", expanding=True)),
                                    D.c.replayed_at.is_(None))
_DEAD_UNREPLAYED = select(D).where(D.c.id.in_(bindparam("ids", expanding=True)), D.c.replayed_at.is_(None))
_MARK_REPLAYED = (update(D).where(D.c.id.in_(bindparam("ids", expanding=True)))
                  .values(replayed_at=bindparam("now")))
_OUTBOX_BATCH = (select(O.c.id, O.c.event_id, E.c.raw).join(E, E.c.id == O.c.event_id)
                 .where(O.c.dest == bindparam("dest"), O.c.id > bindparam("after")).order_by(O.c.id)
                 .limit(bindparam("limit")))

_INSERT_INBOX = InboxRow.__table__.insert()

PEER_FIELDS = ("url", "last_contact", "acked", "cursor", "failures", "next_attempt_at", "last_error",
               "lease_owner", "lease_until", "repairs", "anti_entropy_at")


class SyncRepo:
    conn: object
    dialect: str
    queued_dests: set[str]  # Tx: the destinations this transaction queued events for (whose loops to wake)
    select_in: object  # Tx.select_in
    rows: object  # Tx.rows

    # -- outbox ---------------------------------------------------------------
    def enqueue(self, dest: str, event_ids: Sequence[str], now: float | None = None) -> None:
        if event_ids:
            self.queued_dests.add(dest)
            now = time.time() if now is None else now
            for e in event_ids:  # written in this order, so outbox ids follow it
                self.defer(_ENQUEUE, {"dest": dest, "event_id": e, "enqueued_at": now})
            self.queued_here.setdefault(dest, set()).update(event_ids)

    def _outbox_pg_sequence(self) -> str:
        return self.conn.execute(text("SELECT pg_get_serial_sequence('outbox', 'id')")).scalar_one()

    def outbox_sequence(self) -> int:
        """The highest queue position ever handed out here (rows pruned since included)."""
        if self.dialect == "sqlite":
            return self.conn.execute(text("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'")
                                     ).scalar_one()
        row = self.conn.execute(text("SELECT last_value, is_called FROM " + self._outbox_pg_sequence())).one()
        return row.last_value if row.is_called else 0

    def queue_above(self, dest: str, floor: int) -> int:
        """Hand out positions above ``floor`` from now on, and move there, in their order, the entries for
        ``dest`` not acknowledged yet, if any sits at or under it: a peer that holds our positions up to
        ``floor`` (its cursor, from before this database was restored from an older copy) would otherwise
        take them as delivered. Return how many entries sat at or under it."""
        if self.dialect == "sqlite":
            self.conn.execute(text("INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', 0 WHERE NOT EXISTS "
                                   "(SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')"))
            self.conn.execute(text("UPDATE sqlite_sequence SET seq = :floor WHERE name = 'outbox' AND seq < :floor"),
                              {"floor": floor})
        else:
            name = self._outbox_pg_sequence()
            self.conn.execute(text("SELECT setval(CAST(:name AS regclass), :floor) WHERE "
                                   "(SELECT last_value FROM " + name + ") < :floor"), {"name": name, "floor": floor})
        pending = list(self.conn.execute(select(O.c.id, O.c.event_id, O.c.enqueued_at)
                                         .where(O.c.dest == dest, O.c.id > self.peer(dest)["acked"]).order_by(O.c.id)))
        under = sum(1 for r in pending if r.id <= floor)
        if under:
            self.conn.execute(O.delete().where(O.c.id.in_([r.id for r in pending])))
            self.conn.execute(O.insert(), [{"dest": dest, "event_id": r.event_id, "enqueued_at": r.enqueued_at}
                                           for r in pending])
            self.queued_dests.add(dest)
        return under

    def outbox_batch(self, dest: str, after: int, limit: int) -> list[tuple[int, Event]]:
        rows = self.rows(_OUTBOX_BATCH, dest=dest, after=after, limit=limit)
        return [(pos, event_to_send(event_id, raw)) for pos, event_id, raw in rows]

    def outbox_depth(self, dest: str, after: int, cap: int | None = None) -> int:
        """Entries queued for ``dest`` after ``after``; with ``cap``, counting stops past it (cheap on a
        long queue)."""
        q = select(O.c.id).where(O.c.dest == dest, O.c.id > after)
        if cap is not None:
            q = q.limit(cap + 1)
        return self.conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()

    def outbox_last_id(self, dest: str) -> int:
        return self.conn.execute(select(func.max(O.c.id)).where(O.c.dest == dest)).scalar_one() or 0

    def outbox_dests(self) -> list[str]:
        return list(self.conn.execute(select(O.c.dest).distinct()).scalars())

    def prune_outbox(self, dest: str, upto: int, keep_after: float) -> int:
        """Forget delivered entries older than ``keep_after`` (pull needs the recent ones)."""
        res = self.conn.execute(O.delete().where(O.c.dest == dest, O.c.id <= upto, O.c.enqueued_at < keep_after))
        return res.rowcount or 0

    def in_flight(self, dest: str, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are queued for ``dest`` and not yet acknowledged by it."""
        return self.queued_for(dest, event_ids, after=self.peer(dest)["acked"])

    def queued_for(self, dest: str, event_ids: Iterable[str], after: int = 0) -> set[str]:
        """Which of ``event_ids`` are queued for ``dest`` past the position ``after``. Asked about a page of
        ids at a time, so a long queue is never read whole.

        What this transaction queued and has not written yet counts without being written first
        (``queued_here``: their positions will follow every one handed out, so they are past any ``after``
        a peer acknowledged), and no other deferred write can change the answer (only ``enqueue`` defers
        outbox rows). A hub asks this for every ticket that a receive gives a new holder, and writing out
        the deferred rows before each question split a receive's statements into a round per routed
        ticket."""
        ids = set(event_ids)
        here = ids & self.queued_here.get(dest, set())
        return here | {r.event_id for r in self.select_in(_QUEUED_FOR, "ids", ids - here, dest=dest, after=after,
                                                          unwritten=True)}

    # -- inbox ------------------------------------------------------------------
    def inbox_add(self, origin: str, event_ids: Sequence[str], now: float | None = None) -> None:
        """Note that ``origin`` delivered ``event_ids``, events this transaction stores fresh (a duplicate
        has its row from its first delivery: ``EventLog.ingest`` passes only the fresh ones)."""
        if event_ids:
            now = time.time() if now is None else now
            for e in event_ids:
                self.defer(_INSERT_INBOX, {"origin": origin, "event_id": e, "received_at": now})

    def inbox_count(self, origin: str | None = None) -> int:
        I = InboxRow.__table__
        q = select(func.count()).select_from(I)
        if origin:
            q = q.where(I.c.origin == origin)
        return self.conn.execute(q).scalar_one()

    # -- peers ------------------------------------------------------------------
    def peer(self, node_id: str) -> dict:
        row = self.conn.execute(_PEER, {"node": node_id}).first()
        if row is None and not self.write:   # a read transaction writes nothing: the row it would insert
            return PeerRow(node_id=node_id).model_dump()
        if row is None:
            self.conn.execute(insert_ignore(self.dialect, P).values(node_id=node_id, last_error=""))
            row = self.conn.execute(_PEER, {"node": node_id}).first()
        return dict(row._mapping)

    def peer_ids(self) -> set[str]:
        return set(self.conn.execute(_PEER_IDS).scalars())

    def sendable(self, now: float) -> set[str]:
        """Peers with entries queued after their checkpoint and no backoff in force at ``now``: one index
        probe each, and no write."""
        return set(self.conn.execute(_SENDABLE, {"now": now}).scalars())

    def has_queued(self, node_id: str) -> bool | None:
        """Are entries queued for ``node_id`` past its checkpoint? None if it has no checkpoint row yet.
        A read: unlike ``peer``, it never writes the row."""
        row = self.conn.execute(_HAS_QUEUED, {"node": node_id}).first()
        return None if row is None else bool(row.queued)

    def peers(self) -> list[dict]:
        return [dict(r._mapping) for r in self.conn.execute(select(P).order_by(P.c.node_id))]

    def update_peer(self, node_id: str, **values) -> None:
        unknown = set(values) - set(PEER_FIELDS)
        if unknown:
            raise ValueError(f"unknown peer fields {unknown}")
        self.peer(node_id)
        self.conn.execute(update(P).where(P.c.node_id == node_id).values(**values))

    def advance_peer(self, node_id: str, *, acked: int | None = None, cursor: int | None = None) -> None:
        """Move checkpoints forward only (never back)."""
        self.peer(node_id)
        if acked is not None:
            self.conn.execute(update(P).where(P.c.node_id == node_id, P.c.acked < acked).values(acked=acked))
        if cursor is not None:
            self.conn.execute(update(P).where(P.c.node_id == node_id, P.c.cursor < cursor).values(cursor=cursor))

    def take_lease(self, node_id: str, owner: str, now: float, ttl: float) -> bool:
        """One transmission loop per destination across every process sharing the database."""
        self.peer(node_id)
        res = self.conn.execute(update(P).where(
            P.c.node_id == node_id,
            or_(P.c.lease_owner == "", P.c.lease_owner == owner, P.c.lease_until < now),
        ).values(lease_owner=owner, lease_until=now + ttl))
        return (res.rowcount or 0) == 1

    def release_lease(self, node_id: str, owner: str) -> None:
        self.conn.execute(update(P).where(P.c.node_id == node_id, P.c.lease_owner == owner)
                          .values(lease_owner="", lease_until=0.0))

    # -- dead letters -----------------------------------------------------------
    def add_dead_letters(self, dest: str, items: Sequence[tuple[str, str]], now: float | None = None) -> None:
        if items:
            now = time.time() if now is None else now
            self.conn.execute(D.insert(), [{"dest": dest, "event_id": e, "reason": r, "created_at": now}
                                           for e, r in items])

    def forget_refusals(self, dest: str, event_ids: Iterable[str]) -> None:
        """Drop the dead letters of ``event_ids`` under ``dest``: they are stored here after all."""
        for page in pages(list(event_ids)):
            self.conn.execute(D.delete().where(D.c.dest == dest, D.c.event_id.in_(page)))

    def refused_ids(self, dest: str, event_ids: Iterable[str]) -> set[str]:
        """Of ``event_ids``, those on the dead-letter list under ``dest`` and not replayed."""
        return {r.event_id for r in self.select_in(_REFUSED, "ids", event_ids, dest=dest)}

    def dead_letters(self, *, include_replayed: bool = False, after: int = 0, limit: int | None = None) -> list[dict]:
        """Dead letters by id, those after ``after``; at most ``limit`` of them (all when None)."""
        q = select(D).where(D.c.id > after).order_by(D.c.id)
        if not include_replayed:
            q = q.where(D.c.replayed_at.is_(None))
        if limit is not None:
            q = q.limit(limit)
        return [dict(r._mapping) for r in self.conn.execute(q)]

    def dead_letter_count(self, dest: str | None = None) -> int:
        """Unreplayed dead letters for ``dest`` (all destinations when None)."""
        q = select(func.count()).select_from(D).where(D.c.replayed_at.is_(None))
        return self.conn.execute(q if dest is None else q.where(D.c.dest == dest)).scalar_one()

    def mark_replayed(self, ids: Iterable[int], now: float | None = None) -> list[dict]:
        """Mark the unreplayed ones among ``ids`` replayed; return them in id order. Any number of ids (a
        whole backlog may have been dead-lettered): they are bound a page at a time."""
        now = time.time() if now is None else now
        rows = sorted((dict(r._mapping) for r in self.select_in(_DEAD_UNREPLAYED, "ids", set(ids))),
                      key=lambda r: r["id"])
        for page in pages([r["id"] for r in rows]):
            self.conn.execute(_MARK_REPLAYED, {"ids": page, "now": now})
        return rows

    # -- replay protection ------------------------------------------------------
    def use_nonce(self, key_id: str, nonce: str, expires_at: float, now: float) -> bool:
        """Record a request nonce; False if it was already used (a replay)."""
        N = NonceRow.__table__
        self.conn.execute(N.delete().where(N.c.expires_at < now))
        # RETURNING, not rowcount: psycopg reports rowcount -1 for INSERT ... ON CONFLICT DO NOTHING
        res = self.conn.execute(insert_ignore(self.dialect, N).values(key_id=key_id, nonce=nonce,
                                                                      expires_at=expires_at).returning(N.c.nonce))
        return res.first() is not None


    # -- anti-entropy -----------------------------------------------------------------
    def tickets_for_node(self, node_id: str, after: str, limit: int) -> list[str]:
        """Tickets a node should hold in full: it is their origin or current holder."""
        q = select(T.c.ticket_id).where(_held_by(node_id), T.c.ticket_id > after).order_by(T.c.ticket_id).limit(limit)
        return list(self.conn.execute(q).scalars())

    def tickets_held_by(self, node_id: str, ticket_ids: Iterable[str]) -> set[str]:
        """Those of ``ticket_ids`` that ``node_id`` should hold in full (the rule of ``tickets_for_node``);
        a ticket with no projection here is not among them."""
        return {r.ticket_id for r in self.select_in(_TICKETS_HELD_BY, "tickets", set(ticket_ids), node=node_id)}

    def event_ids_by_ticket(self, ticket_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t: [] for t in ticket_ids}
        for r in self.select_in(_TICKET_EVENT_IDS, "tickets", out):
            out[r.ticket].append(r.id)
        return out
