"""Schema migrations with Alembic, driven from code (no alembic.ini to ship).

``init`` applies them (``upgrade``); ``run`` refuses to start on a database
that is not at the newest revision (``check``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError, OperationalError

from adapters.storage.sql import SqlStorage
from node.errors import ConfigError, StorageError

SCRIPTS = Path(__file__).parent / "migrations"


def _config(storage: SqlStorage) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", storage.url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(f"database_url: {exc.orig if exc.orig else exc}") from exc


def upgrade(storage: SqlStorage) -> None:
    cfg = _config(storage)
    with _database_errors(), storage.engine.connect() as conn:
        conn.info["write"] = True
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def head_revision() -> str:
    return ScriptDirectory(str(SCRIPTS)).get_current_head()


def current_revision(storage: SqlStorage) -> str | None:
    with _database_errors(), storage.engine.connect() as conn:
        conn.info["write"] = False
        return MigrationContext.configure(conn).get_current_revision()


def check(storage: SqlStorage) -> None:
    current, head = current_revision(storage), head_revision()
    if current != head:
        raise ConfigError(f"database_url: schema is at revision {current or 'none'}, expected {head} "
                          "(run 'simpul init' or 'simpul migrate')")
