"""Schema migrations with Alembic, driven from code (no alembic.ini to ship).

``init`` applies them (``upgrade``), and so does ``simpul migrate`` for a node
whose Simpul was upgraded; every command refuses a database that is not at
the newest revision (``check``).

Alembic is imported only to migrate. A node checks its schema at every start
against ``REVISIONS`` and the one row of ``alembic_version``: with Alembic
loaded for that check (and Mako and Pygments with it), every running node
held about 9 MB more for its whole life (its imports: 73 MB against 64).
tests/contract/test_storage.py checks ``REVISIONS`` against the scripts.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from adapters.storage.sql import SqlStorage, database_errors
from node.errors import ConfigError

SCRIPTS = Path(__file__).parent / "migrations"
REVISIONS = ("0001", "0002", "0003", "0004", "0005")   # oldest first: the scripts' chain (see the docstring)


def _config(storage: SqlStorage):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", storage.url.replace("%", "%%"))
    return cfg


def upgrade(storage: SqlStorage) -> None:
    from alembic import command
    cfg = _config(storage)
    with database_errors("database_url"), storage.engine.connect() as conn:
        conn.info["write"] = True
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def head_revision() -> str:
    return REVISIONS[-1]


def current_revision(storage: SqlStorage) -> str | None:
    """The revision ``alembic_version`` records; None for a database without that table or row."""
    with database_errors("database_url"), storage.engine.connect() as conn:
        conn.info["write"] = False
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


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
    current = current_revision(storage)
    if current is None:
        raise ConfigError("database_url: holds no Simpul schema (is the config the node's? 'simpul init' creates "
                          "a node's database)")
    if current not in REVISIONS:
        raise ConfigError(f"database_url: schema is at revision {current}, which this Simpul does not know "
                          "(a newer version migrated it)")
    return None if current == head_revision() else current
