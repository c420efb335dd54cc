"""Events, ticket projections, chain heads, idempotency and origin-only data."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select, update

from adapters.storage.common import insert_ignore, upsert
from adapters.storage.tables import (AuditRow, ChainHeadRow, ConflictRow, EventRow, IdempotencyRow, MetaRow,
                                     ReporterPrivateRow, TicketRow)
from node.lifecycle import Status
from node.ticket import TicketState
from schemas.events import Event

E, T = EventRow.__table__, TicketRow.__table__


def _event(raw: str) -> Event:
    return Event.from_wire(json.loads(raw))


def state_from_json(raw: str) -> TicketState:
    data = json.loads(raw)
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

    # -- events ---------------------------------------------------------------
    def insert_events(self, events: Sequence[Event], now: float | None = None) -> list[Event]:
        """Insert events not yet stored; return the ones that were new."""
        if not events:
            return []
        now = time.time() if now is None else now
        known = self.existing_event_ids([e.id for e in events])
        fresh, seen = [], set()
        for e in events:
            if e.id not in known and e.id not in seen:
                seen.add(e.id)
                fresh.append(e)
        if fresh:
            self.conn.execute(E.insert(), [
                {"id": e.id, "ticket": e.ticket, "author": e.author, "seq": e.seq, "hlc": e.hlc, "type": e.type,
                 "raw": e.canonical_wire(), "received_at": now} for e in fresh])
        return fresh

    def existing_event_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found.update(self.conn.execute(select(E.c.id).where(E.c.id.in_(chunk))).scalars())
        return found

    def get_events(self, ids: Iterable[str]) -> list[Event]:
        ids = list(ids)
        out: list[Event] = []
        for i in range(0, len(ids), 500):
            rows = self.conn.execute(select(E.c.raw).where(E.c.id.in_(ids[i:i + 500]))).scalars()
            out.extend(_event(r) for r in rows)
        return out

    def ticket_events(self, ticket_id: str) -> list[Event]:
        rows = self.conn.execute(select(E.c.raw).where(E.c.ticket == ticket_id).order_by(E.c.hlc, E.c.author, E.c.id))
        return [_event(r) for r in rows.scalars()]

    def ticket_events_raw(self, ticket_id: str) -> list[str]:
        return list(self.conn.execute(select(E.c.raw).where(E.c.ticket == ticket_id)
                                      .order_by(E.c.hlc, E.c.author, E.c.id)).scalars())

    def author_seq_ids(self, author: str, seqs) -> dict[int, str]:
        rows = self.conn.execute(select(E.c.seq, E.c.id).where(E.c.author == author, E.c.seq.in_(list(seqs))))
        return {r.seq: r.id for r in rows}

    def events_by_author(self, author: str, after_seq: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
        """(pos, raw) of ``author``'s events in chain order."""
        rows = self.conn.execute(select(E.c.seq, E.c.raw).where(E.c.author == author, E.c.seq > after_seq)
                                 .order_by(E.c.seq).limit(limit))
        return [(r.seq, r.raw) for r in rows]

    def events_page(self, after_pos: int, limit: int) -> list[tuple[int, str]]:
        rows = self.conn.execute(select(E.c.pos, E.c.raw).where(E.c.pos > after_pos).order_by(E.c.pos).limit(limit))
        return [(r.pos, r.raw) for r in rows]

    def event_authors(self) -> list[str]:
        return list(self.conn.execute(select(E.c.author).distinct()).scalars())

    def count_events(self) -> int:
        return self.conn.execute(select(func.count()).select_from(E)).scalar_one()

    def delete_event(self, event_id: str) -> None:
        self.conn.execute(E.delete().where(E.c.id == event_id))

    # -- chain heads ----------------------------------------------------------
    def chain_head(self, author: str, lock: bool = False) -> tuple[int, str | None]:
        H = ChainHeadRow.__table__
        q = select(H.c.seq, H.c.head).where(H.c.author == author)
        if lock and self.dialect == "postgresql":
            self.conn.execute(insert_ignore(self.dialect, H).values(author=author, seq=0, head=""))
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        if row is None or row.seq == 0:
            return 0, None
        return row.seq, row.head

    def set_chain_head(self, author: str, seq: int, head: str) -> None:
        self.conn.execute(upsert(self.dialect, ChainHeadRow.__table__, ["author"],
                                 {"author": author, "seq": seq, "head": head}))

    # -- ticket projections ---------------------------------------------------
    def put_ticket(self, state: TicketState, *, awaiting_disposition: bool = False, open_conflicts: int = 0) -> None:
        values = {"ticket_id": state.ticket_id, "tracking_id": state.tracking_id, "origin": state.origin,
                  "status": state.status.value, "institution": state.institution, "holder_node": state.holder_node,
                  "report_type": state.report_type, "category": state.category, "region": state.region,
                  "anonim": state.anonim, "rahasia": state.rahasia, "filed_at": state.filed_at,
                  "last_hlc": state.last_hlc, "awaiting_disposition": awaiting_disposition,
                  "open_conflicts": open_conflicts, "digest": "",
                  "state_json": json.dumps(state.public_dict(), ensure_ascii=False)}
        self.conn.execute(upsert(self.dialect, T, ["ticket_id"], values))

    def set_ticket_digest(self, ticket_id: str, digest: str) -> None:
        self.conn.execute(update(T).where(T.c.ticket_id == ticket_id).values(digest=digest))

    def get_ticket(self, ticket_id: str) -> TicketState | None:
        raw = self.conn.execute(select(T.c.state_json).where(T.c.ticket_id == ticket_id)).scalar_one_or_none()
        return state_from_json(raw) if raw else None

    def list_tickets(self, *, filters: dict, limit: int, offset: int) -> tuple[list[TicketState], int]:
        q = select(T.c.state_json)
        c = select(func.count()).select_from(T)
        for name, value in filters.items():
            cond = getattr(T.c, name) == value
            q, c = q.where(cond), c.where(cond)
        rows = self.conn.execute(q.order_by(T.c.filed_at.desc(), T.c.ticket_id).limit(limit).offset(offset))
        return [state_from_json(r) for r in rows.scalars()], self.conn.execute(c).scalar_one()

    def ticket_ids(self) -> list[str]:
        return list(self.conn.execute(select(T.c.ticket_id)).scalars())

    def count_tickets_by(self, column: str) -> dict[str, int]:
        col = getattr(T.c, column)
        return {str(k): v for k, v in self.conn.execute(select(col, func.count()).group_by(col))}

    # -- idempotency ----------------------------------------------------------
    def idempotency_get(self, key: str) -> tuple[str, str] | None:
        I = IdempotencyRow.__table__
        row = self.conn.execute(select(I.c.request_hash, I.c.ticket_id).where(I.c.key == key)).first()
        return (row.request_hash, row.ticket_id) if row else None

    def idempotency_put(self, key: str, request_hash: str, ticket_id: str) -> None:
        self.conn.execute(IdempotencyRow.__table__.insert().values(
            key=key, request_hash=request_hash, ticket_id=ticket_id, created_at=time.time()))

    # -- origin-only data -----------------------------------------------------
    def put_private(self, ticket_id: str, identity: dict, original_body: str, redactions: list) -> None:
        self.conn.execute(ReporterPrivateRow.__table__.insert().values(
            ticket_id=ticket_id, identity_json=json.dumps(identity, ensure_ascii=False),
            original_body=original_body, redactions=json.dumps(redactions)))

    def get_private(self, ticket_id: str) -> dict | None:
        P = ReporterPrivateRow.__table__
        row = self.conn.execute(select(P).where(P.c.ticket_id == ticket_id)).first()
        if row is None:
            return None
        return {"identity": json.loads(row.identity_json), "original_body": row.original_body,
                "redactions": json.loads(row.redactions)}

    def audit(self, ticket_id: str, actor: str, action: str, detail: str = "") -> None:
        self.conn.execute(AuditRow.__table__.insert().values(ticket_id=ticket_id, actor=actor, action=action,
                                                             at=time.time(), detail=detail))

    def audit_log(self, ticket_id: str) -> list[dict]:
        A = AuditRow.__table__
        rows = self.conn.execute(select(A).where(A.c.ticket_id == ticket_id).order_by(A.c.id))
        return [dict(r._mapping) for r in rows]

    # -- conflicts --------------------------------------------------------------
    def put_conflict(self, values: dict) -> None:
        self.conn.execute(upsert(self.dialect, ConflictRow.__table__, ["id"], values))

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
        M = MetaRow.__table__
        value = self.conn.execute(select(M.c.value).where(M.c.key == key)).scalar_one_or_none()
        return default if value is None else value

    def meta_set(self, key: str, value: str) -> None:
        self.conn.execute(upsert(self.dialect, MetaRow.__table__, ["key"], {"key": key, "value": value}))

    def next_counter(self, key: str) -> int:
        value = int(self.meta_get(key, "0")) + 1
        self.meta_set(key, str(value))
        return value

