"""Helpers shared by the repository mixins.

Statements on hot paths are built once per shape and reused: building and
cache-keying a SQLAlchemy statement costs more than SQLite takes to run it.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

from sqlalchemy.dialects import postgresql, sqlite


IN_PAGE = 500  # values bound in one IN (...) list: well under SQLite's parameter limit


def pages(values: Iterable, size: int = IN_PAGE) -> Iterator[list]:
    """``values`` in lists of at most ``size``, for ``IN (...)`` queries over a list of any length."""
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i:i + size]


@functools.lru_cache(maxsize=None)
def insert_ignore(dialect: str, table):
    """INSERT ... ON CONFLICT DO NOTHING, on either backend."""
    mod = postgresql if dialect == "postgresql" else sqlite
    return mod.insert(table).on_conflict_do_nothing()


@functools.lru_cache(maxsize=None)
def upsert_statement(dialect: str, table, keys: tuple[str, ...], columns: tuple[str, ...]):
    """INSERT of ``columns`` that updates the row with the same ``keys`` instead (built once per shape)."""
    mod = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(table)
    updates = [c for c in columns if c not in keys]
    if not updates:
        return stmt.on_conflict_do_nothing()
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in updates})


def upsert(conn, dialect: str, table, keys: list[str], values: dict) -> None:
    """Insert ``values``, or update the row with the same ``keys`` to them."""
    conn.execute(upsert_statement(dialect, table, tuple(keys), tuple(values)), values)
