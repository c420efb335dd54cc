"""Storage behind one interface (``SqlStorage``), on SQLite (default, WAL) or PostgreSQL.

SQLModel table classes stay in this package; the domain sees frozen value
objects (``schemas.events.Event``, ``node.ticket.TicketState``) only.
"""
from adapters.storage.sql import SqlStorage, Tx

__all__ = ["SqlStorage", "Tx"]
