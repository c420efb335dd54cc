"""Helpers shared by the repository mixins."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(dialect: str, table):
    """INSERT ... ON CONFLICT DO NOTHING, on either backend."""
    mod = postgresql if dialect == "postgresql" else sqlite
    return mod.insert(table).on_conflict_do_nothing()


def upsert(dialect: str, table, keys: list[str], values: dict):
    mod = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(table).values(**values)
    updates = {k: v for k, v in values.items() if k not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=updates) if updates else stmt.on_conflict_do_nothing()
