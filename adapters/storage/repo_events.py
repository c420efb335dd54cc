"""Events, ticket projections, chain heads, idempotency and origin-only data (among it, the
tickets whose reporter identity waits for a sealing key: one row each, read a page at a time).

A transaction remembers the events of the tickets it has read
(``ticket_events``) and keeps them current as it inserts, so that filing,
receiving, routing and fan-out, which all look at the same ticket in one
transaction, read it from the database once. ``prefetch_ticket_events`` reads
many tickets in one query (a received batch touches hundreds).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

import orjson
from sqlalchemy import bindparam, func, select

from adapters.storage.common import insert_ignore, pages, upsert, upsert_statement
from adapters.storage.tables import (AuditRow, ChainHeadRow, ConflictRow, DeadLetterRow, EventRow, IdempotencyRow,
                                     IdentityPendingRow, InstitutionRow, MetaRow, OutboxRow, ReporterPrivateRow,
                                     TicketRow)
from node.lifecycle import Status
from node.ticket import TicketState
from schemas.events import Event

E, T = EventRow.__table__, TicketRow.__table__
H = ChainHeadRow.__table__
# Hot statements, built once (see adapters.storage.common).
_INSERT_EVENTS = E.insert()
_EXISTING_IDS = select(E.c.id).where(E.c.id.in_(bindparam("ids", expanding=True)))
_STORED_RAW = select(E.c.id, E.c.raw).where(E.c.id.in_(bindparam("ids", expanding=True)))
_TICKET_EVENTS = (select(E.c.id, E.c.raw).where(E.c.ticket == bindparam("ticket"))
                  .order_by(E.c.hlc, E.c.author, E.c.id))
_TICKETS_EVENTS = (select(E.c.ticket, E.c.id, E.c.raw).where(E.c.ticket.in_(bindparam("tickets", expanding=True)))
                   .order_by(E.c.ticket, E.c.hlc, E.c.author, E.c.id))
_AUTHOR_SEQS = select(E.c.seq, E.c.id).where(E.c.author == bindparam("author"),
                                            E.c.seq.in_(bindparam("seqs", expanding=True)))
_AUTHOR_SEQS_BOUNDED = _AUTHOR_SEQS.where(E.c.seq.between(bindparam("lo"), bindparam("hi")))
_CHAIN_HEAD = select(H.c.seq, H.c.head).where(H.c.author == bindparam("author"))
_GET_TICKET = select(T.c.state_json).where(T.c.ticket_id == bindparam("ticket"))
_GET_TICKETS = select(T.c.ticket_id, T.c.state_json).where(T.c.ticket_id.in_(bindparam("tickets", expanding=True)))
_META_GET = select(MetaRow.__table__.c.value).where(MetaRow.__table__.c.key == bindparam("key"))
I = IdempotencyRow.__table__
_IDEMPOTENCY_GET = select(I.c.key, I.c.request_hash, I.c.ticket_id).where(I.c.key.in_(bindparam("keys", expanding=True)))
_IDEMPOTENCY_PUT = I.insert()
RP = ReporterPrivateRow.__table__
_PUT_PRIVATE = RP.insert()
_GET_PRIVATES = select(RP).where(RP.c.ticket_id.in_(bindparam("tickets", expanding=True)))
_AUDIT = AuditRow.__table__.insert()
IP = IdentityPendingRow.__table__
_PENDING_DELETE = IP.delete().where(IP.c.ticket_id == bindparam("ticket"))
_PENDING_PAGE = (select(IP.c.ticket_id).where(IP.c.ticket_id > bindparam("after")).order_by(IP.c.ticket_id)
                 .limit(bindparam("limit")))
_CACHE_TICKETS = 5000  # tickets whose events one transaction keeps at most


def _order(event: Event) -> tuple[str, str, str]:
    return (event.hlc, event.author, event.id)


# Recently stored or read events, by id: a ticket's events are read back again and again as it grows, and
# an event never changes (its id is the hash of its content), so they are parsed once. 1,000 events (a few
# hundred tickets' histories) and not 5,000: a drain's batches pass through it whole, and at 5,000 it held
# about 17 MB more of a hub's peak and 9 MB of a district's, for no gain in two 100,000-event drains.
_PARSED: dict[str, Event] = {}
_PARSED_MAX = 1_000


def _remember(events: Iterable[Event]) -> None:
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.clear()
    for e in events:
        _PARSED[e.id] = e


def stored_event(event_id: str, raw: str) -> Event:
    """The event stored as ``raw`` (parsed once, then remembered)."""
    event = _PARSED.get(event_id)
    if event is None:
        event = _PARSED[event_id] = Event.from_stored(raw)
    return event


def event_to_send(event_id: str, raw: str) -> Event:
    """The event stored as ``raw``, read to be sent on as it is: parsed already if this process has it, else
    parsed only when a field other than its id is read (``Event.unparsed``)."""
    return _PARSED.get(event_id) or Event.unparsed(event_id, raw)


def state_from_json(raw: str) -> TicketState:
    data = orjson.loads(raw)
    data["status"] = Status(data["status"])
    for k in ("returned_by",):
        data[k] = tuple(data[k])
    for k in ("followups", "replies", "conflicts"):
        data[k] = tuple(data[k])
    data["ignored"] = tuple(tuple(x) for x in data["ignored"])
    return TicketState(**data)


class EventRepo:
    conn: object
    dialect: str
    defer: object  # Tx.defer
    select_in: object  # Tx.select_in

    # -- events ---------------------------------------------------------------
    def insert_events(self, events: Sequence[Event], now: float | None = None, *, signed_here: bool = False
                      ) -> list[Event]:
        """Insert events not yet stored; return the ones that were new. ``signed_here``: the caller has just
        signed them on top of its chain head, so they cannot be stored yet (no lookup)."""
        if not events:
            return []
        now = time.time() if now is None else now
        known = set() if signed_here else self.existing_event_ids([e.id for e in events])
        fresh, seen = [], set()
        for e in events:
            if e.id not in known and e.id not in seen:
                seen.add(e.id)
                fresh.append(e)
        if fresh:
            for e in fresh:  # written together, in this order, before the next statement or the commit
                self.defer(_INSERT_EVENTS, {"id": e.id, "ticket": e.ticket, "author": e.author, "seq": e.seq,
                                            "hlc": e.hlc, "type": e.type, "raw": e.canonical_wire(),
                                            "received_at": now})
            _remember(fresh)
            cache = self._events_cache()
            for e in fresh:
                if e.ticket in cache:
                    cache[e.ticket].append(e)
            for ticket in {e.ticket for e in fresh if e.ticket in cache}:
                cache[ticket].sort(key=_order)
        return fresh

    def existing_event_ids(self, ids: Iterable[str]) -> set[str]:
        return {r.id for r in self.select_in(_EXISTING_IDS, "ids", ids)}

    def stored_raw(self, ids: Iterable[str]) -> dict[str, str]:
        """The stored canonical form of those of ``ids`` that are stored."""
        return {r.id: r.raw for r in self.select_in(_STORED_RAW, "ids", ids)}

    def get_events(self, ids: Iterable[str]) -> list[Event]:
        return [Event.from_stored(r.raw) for r in self.select_in(_STORED_RAW, "ids", ids)]

    def _events_cache(self) -> dict[str, list[Event]]:
        cache = self.__dict__.setdefault("_ticket_events", {})
        if len(cache) > _CACHE_TICKETS:
            cache.clear()
        return cache

    def new_ticket(self, ticket_id: str) -> None:
        """``ticket_id`` was just minted here: it has no stored events to read."""
        self._events_cache()[ticket_id] = []

    def ticket_events(self, ticket_id: str) -> list[Event]:
        cache = self._events_cache()
        if ticket_id not in cache:
            cache[ticket_id] = [stored_event(r.id, r.raw) for r in self.conn.execute(_TICKET_EVENTS, {"ticket": ticket_id})]
        return list(cache[ticket_id])

    def prefetch_ticket_events(self, ticket_ids: Iterable[str]) -> None:
        """Read the events of many tickets at once, for ``ticket_events`` later in this transaction."""
        cache = self._events_cache()
        found: dict[str, list[Event]] = {t: [] for t in ticket_ids if t not in cache}
        for ticket, event_id, raw in self.select_in(_TICKETS_EVENTS, "tickets", found):
            found[ticket].append(stored_event(event_id, raw))   # (in order: a ticket is never split across pages)
        cache.update(found)

    def ticket_events_raw(self, ticket_id: str) -> list[str]:
        return list(self.conn.execute(select(E.c.raw).where(E.c.ticket == ticket_id)
                                      .order_by(E.c.hlc, E.c.author, E.c.id)).scalars())

    def author_seq_ids(self, author: str, seqs) -> dict[int, str]:
        """seq -> event id of ``author``'s stored events among ``seqs``.

        On PostgreSQL each page of seqs is also bounded by its lowest and highest, which the IN list
        implies already. On a table it has not analyzed yet (a new hub's first minutes, a drain into it),
        its planner otherwise used the (author, seq) index for the author alone and read every event of the
        author at each lookup: 45 ms a lookup after 20,000 events, growing with the table. The bounds keep
        the scan to the page's range whatever the statistics say. SQLite probes the index once per value
        without them, which stays best when the seqs are sparse (a district's copy of the hub's chain)."""
        if self.dialect != "postgresql":
            return {r.seq: r.id for r in self.select_in(_AUTHOR_SEQS, "seqs", seqs, author=author)}
        found: dict[int, str] = {}
        for page in pages(sorted(set(seqs))):
            found.update((r.seq, r.id) for r in self.select_in(_AUTHOR_SEQS_BOUNDED, "seqs", page, author=author,
                                                               lo=page[0], hi=page[-1]))
        return found

    def events_by_author(self, author: str, after_seq: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        """(seq, id, raw) of ``author``'s events in chain order, each column as stored."""
        rows = self.conn.execute(select(E.c.seq, E.c.id, E.c.raw).where(E.c.author == author, E.c.seq > after_seq)
                                 .order_by(E.c.seq).limit(limit))
        return [(r.seq, r.id, r.raw) for r in rows]

    def author_head(self, author: str) -> tuple[int, str] | None:
        """(seq, id) of the newest of ``author``'s events held here, whatever this node signed itself."""
        row = self.conn.execute(select(E.c.seq, E.c.id).where(E.c.author == author)
                                .order_by(E.c.seq.desc()).limit(1)).first()
        return None if row is None else (row.seq, row.id)

    def forget_events(self, ids: Sequence[str]) -> None:
        """Take events out of this node's log with their queue entries and dead letters: only for a chain
        recovery (node.chain), whose forked events never left this node and are signed again."""
        self.flush()
        O, D = OutboxRow.__table__, DeadLetterRow.__table__
        for table, column in ((E, E.c.id), (O, O.c.event_id), (D, D.c.event_id)):
            for page in pages(list(ids)):
                self.conn.execute(table.delete().where(column.in_(page)))
        self.__dict__.pop("_ticket_events", None)
        for i in ids:
            _PARSED.pop(i, None)

    def events_page(self, after_pos: int, limit: int) -> list[tuple[int, str]]:
        rows = self.conn.execute(select(E.c.pos, E.c.raw).where(E.c.pos > after_pos).order_by(E.c.pos).limit(limit))
        return [(r.pos, r.raw) for r in rows]

    def event_authors(self) -> list[str]:
        return list(self.conn.execute(select(E.c.author).distinct()).scalars())

    def count_events(self) -> int:
        return self.conn.execute(select(func.count()).select_from(E)).scalar_one()

    # -- chain heads ----------------------------------------------------------
    def chain_head(self, author: str, lock: bool = False) -> tuple[int, str | None]:
        """(seq, id) of ``author``'s newest event. With ``lock``, the head is ours until commit, so this
        transaction remembers it (and what ``set_chain_head`` moves it to) instead of reading it again."""
        locked = self.__dict__.setdefault("_locked_heads", {})
        if author in locked:
            return locked[author]
        q = _CHAIN_HEAD
        if lock and self.dialect == "postgresql":
            self.conn.execute(insert_ignore(self.dialect, H).values(author=author, seq=0, head=""))
            q = q.with_for_update()
        row = self.conn.execute(q, {"author": author}).first()
        head = (0, None) if row is None or row.seq == 0 else (row.seq, row.head)
        if lock:
            locked[author] = head
        return head

    def set_chain_head(self, author: str, seq: int, head: str) -> None:
        self.defer(upsert_statement(self.dialect, H, ("author",), ("author", "seq", "head")),
                   {"author": author, "seq": seq, "head": head}, key=author)
        locked = self.__dict__.setdefault("_locked_heads", {})
        if author in locked:
            locked[author] = (seq, head)

    # -- ticket projections ---------------------------------------------------
    def put_ticket(self, state: TicketState, *, awaiting_disposition: bool = False, open_conflicts: int = 0) -> None:
        values = {"ticket_id": state.ticket_id, "tracking_id": state.tracking_id, "origin": state.origin,
                  "status": state.status.value, "institution": state.institution, "holder_node": state.holder_node,
                  "report_type": state.report_type, "category": state.category, "region": state.region,
                  "anonim": state.anonim, "rahasia": state.rahasia, "filed_at": state.filed_at,
                  "last_hlc": state.last_hlc, "awaiting_disposition": awaiting_disposition,
                  "open_conflicts": open_conflicts, "digest": "",
                  "state_json": orjson.dumps(state.public_dict()).decode("utf-8")}
        self.defer(upsert_statement(self.dialect, T, ("ticket_id",), tuple(values)), values, key=state.ticket_id)

    def get_ticket(self, ticket_id: str) -> TicketState | None:
        raw = self.conn.execute(_GET_TICKET, {"ticket": ticket_id}).scalar_one_or_none()
        return state_from_json(raw) if raw else None

    def get_tickets(self, ticket_ids: Iterable[str]) -> dict[str, TicketState]:
        """The projections of those of ``ticket_ids`` that exist, by id (one query per page of ids)."""
        return {r.ticket_id: state_from_json(r.state_json)
                for r in self.select_in(_GET_TICKETS, "tickets", dict.fromkeys(ticket_ids))}

    def list_tickets(self, *, filters: dict, limit: int, offset: int) -> tuple[list[TicketState], int]:
        q = select(T.c.state_json)
        c = select(func.count()).select_from(T)
        for name, value in filters.items():
            cond = getattr(T.c, name) == value
            q, c = q.where(cond), c.where(cond)
        rows = self.conn.execute(q.order_by(T.c.filed_at.desc(), T.c.ticket_id).limit(limit).offset(offset))
        return [state_from_json(r) for r in rows.scalars()], self.conn.execute(c).scalar_one()

    def tickets_moved_away(self, limit: int) -> list[TicketState]:
        """Tickets routed and not accepted yet whose institution another node hosts now (a federation file
        moved it), at most ``limit``, in id order."""
        inst = InstitutionRow.__table__
        q = (select(T.c.state_json).join(inst, inst.c.id == T.c.institution)
             .where(T.c.status == Status.DISPOSITIONED.value, T.c.holder_node != inst.c.node_id)
             .order_by(T.c.ticket_id).limit(limit))
        return [state_from_json(r) for r in self.conn.execute(q).scalars()]

    def ticket_ids(self) -> list[str]:
        return list(self.conn.execute(select(T.c.ticket_id)).scalars())

    def count_tickets_by(self, column: str) -> dict[str, int]:
        col = getattr(T.c, column)
        return {str(k): v for k, v in self.conn.execute(select(col, func.count()).group_by(col))}

    # -- idempotency ----------------------------------------------------------
    def idempotency_get(self, key: str) -> tuple[str, str] | None:
        return self.idempotency_get_many([key]).get(key)

    def idempotency_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(request hash, ticket id) of those of ``keys`` already used."""
        return {row.key: (row.request_hash, row.ticket_id)
                for row in self.select_in(_IDEMPOTENCY_GET, "keys", dict.fromkeys(keys))}

    def idempotency_put(self, key: str, request_hash: str, ticket_id: str) -> None:
        self.defer(_IDEMPOTENCY_PUT, {"key": key, "request_hash": request_hash, "ticket_id": ticket_id,
                                      "created_at": time.time()})

    # -- origin-only data -----------------------------------------------------
    def put_private(self, ticket_id: str, identity: dict, original_body: str, redactions: list) -> None:
        self.defer(_PUT_PRIVATE, {"ticket_id": ticket_id, "identity_json": orjson.dumps(identity).decode(),
                                  "original_body": original_body, "redactions": orjson.dumps(redactions).decode()})

    def get_private(self, ticket_id: str) -> dict | None:
        return self.get_privates([ticket_id]).get(ticket_id)

    def get_privates(self, ticket_ids: Iterable[str]) -> dict[str, dict]:
        """The origin-only records of those of ``ticket_ids`` that have one, by ticket id."""
        return {row.ticket_id: {"identity": json.loads(row.identity_json), "original_body": row.original_body,
                                "redactions": json.loads(row.redactions)}
                for row in self.select_in(_GET_PRIVATES, "tickets", dict.fromkeys(ticket_ids))}

    def add_identity_pending(self, ticket_ids: Iterable[str]) -> None:
        """Note that these tickets' reporter identities wait for a sealing key (noted already: no change)."""
        stmt = insert_ignore(self.dialect, IP)
        for ticket_id in ticket_ids:  # one slot with the delete below: the last of the two for a ticket wins
            self.defer(stmt, {"ticket_id": ticket_id}, key=ticket_id, slot=IP)

    def remove_identity_pending(self, ticket_ids: Iterable[str]) -> None:
        """These tickets' identities no longer wait (sealed, or nothing to seal); not noted: no change."""
        for ticket_id in ticket_ids:
            self.defer(_PENDING_DELETE, {"ticket": ticket_id}, key=ticket_id, slot=IP)

    def identity_pending(self, after: str = "", limit: int = 500) -> list[str]:
        """Up to ``limit`` of the tickets whose identity waits, those after ``after``, in id order: a page
        (the set can grow large while an institution has no key)."""
        return list(self.conn.execute(_PENDING_PAGE, {"after": after, "limit": limit}).scalars())

    def audit(self, ticket_id: str, actor: str, action: str, detail: str = "") -> None:
        self.defer(_AUDIT, {"ticket_id": ticket_id, "actor": actor, "action": action, "at": time.time(),
                            "detail": detail})

    def audit_log(self, ticket_id: str) -> list[dict]:
        A = AuditRow.__table__
        rows = self.conn.execute(select(A).where(A.c.ticket_id == ticket_id).order_by(A.c.id))
        return [dict(r._mapping) for r in rows]

    # -- conflicts --------------------------------------------------------------
    def put_conflict(self, values: dict) -> None:
        upsert(self.conn, self.dialect, ConflictRow.__table__, ["id"], values)

    def get_conflicts(self, *, status: str | None = None, ticket_id: str | None = None) -> list[dict]:
        C = ConflictRow.__table__
        q = select(C)
        if status:
            q = q.where(C.c.status == status)
        if ticket_id:
            q = q.where(C.c.ticket_id == ticket_id)
        return [dict(r._mapping) for r in self.conn.execute(q.order_by(C.c.detected_hlc, C.c.id))]

    def delete_conflicts(self, ticket_id: str) -> None:
        C = ConflictRow.__table__
        self.conn.execute(C.delete().where(C.c.ticket_id == ticket_id))

    # -- small local settings -------------------------------------------------
    def meta_get(self, key: str, default: str | None = None) -> str | None:
        value = self.conn.execute(_META_GET, {"key": key}).scalar_one_or_none()
        return default if value is None else value

    def meta_set(self, key: str, value: str) -> None:
        upsert(self.conn, self.dialect, MetaRow.__table__, ["key"], {"key": key, "value": value})

    def next_counter(self, key: str, count: int = 1) -> int:
        """Reserve ``count`` consecutive numbers of the counter ``key``; return the first."""
        first = int(self.meta_get(key, "0")) + 1
        self.meta_set(key, str(first + count - 1))
        return first

