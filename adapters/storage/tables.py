"""SQLModel table classes. Only the storage layer imports this module."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("author", "seq", name="uq_events_author_seq"),
                      Index("ix_events_ticket_hlc", "ticket", "hlc"))
    pos: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                              primary_key=True, autoincrement=True))
    id: str = Field(max_length=64, unique=True)
    ticket: str = Field(max_length=64)
    author: str = Field(max_length=64)
    seq: int
    hlc: str = Field(max_length=21)
    type: str = Field(max_length=32)
    raw: str = Field(sa_column=Column(Text, nullable=False))
    received_at: float


class TicketRow(SQLModel, table=True):
    __tablename__ = "tickets"
    ticket_id: str = Field(primary_key=True, max_length=64)
    tracking_id: str = Field(max_length=64, index=True)
    origin: str = Field(max_length=64, index=True)
    status: str = Field(max_length=32, index=True)
    institution: Optional[str] = Field(default=None, max_length=64, index=True)
    holder_node: Optional[str] = Field(default=None, max_length=64)
    report_type: str = Field(max_length=32)
    category: str = Field(max_length=64)
    region: str = Field(max_length=16)
    anonim: bool = False
    rahasia: bool = False
    filed_at: str = Field(max_length=40, index=True)
    last_hlc: str = Field(max_length=21)
    awaiting_disposition: bool = Field(default=False, index=True)
    open_conflicts: int = 0
    digest: str = Field(default="", max_length=64)
    state_json: str = Field(sa_column=Column(Text, nullable=False))


class ChainHeadRow(SQLModel, table=True):
    __tablename__ = "chain_heads"
    author: str = Field(primary_key=True, max_length=64)
    seq: int
    head: str = Field(max_length=64)


class IdempotencyRow(SQLModel, table=True):
    __tablename__ = "idempotency"
    key: str = Field(primary_key=True, max_length=300)
    request_hash: str = Field(max_length=64)
    ticket_id: str = Field(max_length=64)
    created_at: float


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    # (AUTOINCREMENT: an id is a queue position, which peers acknowledge; SQLite must never hand one out again)
    __table_args__ = (Index("ix_outbox_dest_id", "dest", "id"), Index("ix_outbox_dest_event", "dest", "event_id"),
                      {"sqlite_autoincrement": True})
    id: Optional[int] = Field(default=None, primary_key=True)
    dest: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    enqueued_at: float


class InboxRow(SQLModel, table=True):
    """One row per event stored from a peer: who delivered it, and when. Written in the transaction that
    stores the event, for the events stored fresh only, so each is there once (migration 0005)."""
    __tablename__ = "inbox"
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                             primary_key=True, autoincrement=True))
    origin: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    received_at: float


class PeerRow(SQLModel, table=True):
    __tablename__ = "peers"
    node_id: str = Field(primary_key=True, max_length=64)
    url: str = Field(default="", max_length=300)
    last_contact: Optional[float] = None
    acked: int = 0            # highest outbox id of ours this peer has acknowledged
    cursor: int = 0           # highest outbox id of the peer's queue for us that we hold
    failures: int = 0
    next_attempt_at: float = 0.0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    lease_owner: str = Field(default="", max_length=100)
    lease_until: float = 0.0
    repairs: int = 0
    anti_entropy_at: Optional[float] = None


class DeadLetterRow(SQLModel, table=True):
    __tablename__ = "dead_letters"
    id: Optional[int] = Field(default=None, primary_key=True)
    dest: str = Field(max_length=64, index=True)
    event_id: str = Field(max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float
    replayed_at: Optional[float] = None


class NodeRow(SQLModel, table=True):
    __tablename__ = "nodes"
    node_id: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    name: str = Field(default="", max_length=300)
    url: str = Field(default="", max_length=300)
    region: Optional[str] = Field(default=None, max_length=16)
    enrolled_at: Optional[float] = None
    revoked_at: Optional[float] = None


class NodeKeyRow(SQLModel, table=True):
    __tablename__ = "node_keys"
    key_id: str = Field(primary_key=True, max_length=100)
    node_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    public: str = Field(max_length=100)
    valid_from: float
    valid_until: Optional[float] = None


class InstitutionRow(SQLModel, table=True):
    __tablename__ = "institutions"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=300)
    node_id: str = Field(max_length=64, index=True)
    region: Optional[str] = Field(default=None, max_length=16)
    competences: str = Field(sa_column=Column(Text, nullable=False))
    ppid: bool = False
    sealing_key_id: Optional[str] = Field(default=None, max_length=100)
    sealing_public: Optional[str] = Field(default=None, max_length=100)
    wrapped_private: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))


class RegionRow(SQLModel, table=True):
    __tablename__ = "regions"
    code: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=200)
    level: str = Field(max_length=16)
    parent: Optional[str] = Field(default=None, max_length=16)


class ReporterPrivateRow(SQLModel, table=True):
    """Origin-only: the reporter's identity and the unredacted text. Never synced."""
    __tablename__ = "reporter_private"
    ticket_id: str = Field(primary_key=True, max_length=64)
    identity_json: str = Field(sa_column=Column(Text, nullable=False))
    original_body: str = Field(sa_column=Column(Text, nullable=False))
    redactions: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class IdentityPendingRow(SQLModel, table=True):
    """Origin-only: a ticket whose reporter identity waits for its holder's sealing key (node.identity).
    One row per ticket, so that noting or clearing one is a one-row statement."""
    __tablename__ = "identity_pending"
    ticket_id: str = Field(primary_key=True, max_length=64)


class NonceRow(SQLModel, table=True):
    __tablename__ = "nonces"
    key_id: str = Field(primary_key=True, max_length=100)
    nonce: str = Field(primary_key=True, max_length=100)
    expires_at: float = Field(index=True)


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit"
    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=64, index=True)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    at: float
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class ConflictRow(SQLModel, table=True):
    __tablename__ = "conflicts"
    id: str = Field(primary_key=True, max_length=64)
    ticket_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=64)
    sides_json: str = Field(sa_column=Column(Text, nullable=False))
    provisional_winner: str = Field(max_length=64)
    status: str = Field(default="open", max_length=16, index=True)
    resolution_event: Optional[str] = Field(default=None, max_length=64)
    detected_hlc: str = Field(max_length=21)


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(sa_column=Column(Text, nullable=False))
