"""Schema migrations with Alembic, driven from code (no alembic.ini to ship).

``init`` applies them (``upgrade``), and so does ``simpul migrate`` for a node
whose Simpul was upgraded; every command refuses a database that is not at
the newest revision (``check``).
"""
from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

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


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process (every node start checks its schema against them, and
    'simpul migrate' asks for the head several times)."""
    return ScriptDirectory(str(SCRIPTS))


def head_revision() -> str:
    return _scripts().get_current_head()


def current_revision(storage: SqlStorage) -> str | None:
    with database_errors("database_url"), storage.engine.connect() as conn:
        conn.info["write"] = False
        return MigrationContext.configure(conn).get_current_revision()


def require_file(storage: SqlStorage) -> None:
    """A SQLite database that is not there is a ConfigError, before anything connects: connecting would
    create an empty file (a typo in --config left one behind, and 'simpul migrate' would fill it)."""
    if storage.dialect != "sqlite":
        return
    db = make_url(storage.url).database
    if db and db != ":memory:" and not Path(db).is_file():
        raise ConfigError(f"database_url: {db} does not exist (is the config the node's? 'simpul init' "
                          "creates a node's database)")


def check(storage: SqlStorage) -> None:
    """The node's code and its database's schema agree, or a ConfigError that says what to do."""
    current = behind(storage)
    if current is not None:
        raise ConfigError(f"database_url: schema is at revision {current}, expected {head_revision()} "
                          "(run 'simpul migrate' with this config)")


def behind(storage: SqlStorage) -> str | None:
    """The revision of a node's database that ``upgrade`` can bring to the head; None if it is there. A
    ConfigError for a database that is not a node's, or that a newer Simpul migrated."""
    require_file(storage)
    current, scripts = current_revision(storage), _scripts()
    if current is None:
        raise ConfigError("database_url: holds no Simpul schema (is the config the node's? 'simpul init' creates "
                          "a node's database)")
    if current not in {s.revision for s in scripts.walk_revisions()}:
        raise ConfigError(f"database_url: schema is at revision {current}, which this Simpul does not know "
                          "(a newer version migrated it)")
    return None if current == scripts.get_current_head() else current
