"""Schema migrations with Alembic, driven from code (no alembic.ini to ship).

``init`` applies them (``upgrade``); ``run`` refuses to start on a database
that is not at the newest revision (``check``).
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from adapters.storage.sql import SqlStorage, database_errors
from node.errors import ConfigError

SCRIPTS = Path(__file__).parent / "migrations"


def _config(storage: SqlStorage) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", storage.url.replace("%", "%%"))
    return cfg


def upgrade(storage: SqlStorage) -> None:
    cfg = _config(storage)
    with database_errors("database_url"), storage.engine.connect() as conn:
        conn.info["write"] = True
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def head_revision() -> str:
    return ScriptDirectory(str(SCRIPTS)).get_current_head()


def current_revision(storage: SqlStorage) -> str | None:
    with database_errors("database_url"), storage.engine.connect() as conn:
        conn.info["write"] = False
        return MigrationContext.configure(conn).get_current_revision()


def check(storage: SqlStorage) -> None:
    current, head = current_revision(storage), head_revision()
    if current != head:
        raise ConfigError(f"database_url: schema is at revision {current or 'none'}, expected {head} "
                          "(run 'simpul init' or 'simpul migrate')")
