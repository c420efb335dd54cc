"""PostgreSQL for the scripts: a throwaway cluster (``scripts/pg-throwaway``) and empty databases on it.

The national hub runs on PostgreSQL; the bench and the soak can put their hub
there. The cluster lives in its own temporary folder (its server runs as the
``postgres`` user, which may not enter a private work folder) and is removed
by ``stop``.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from benchlib.common import ROOT

SCRIPT = ROOT / "scripts" / "pg-throwaway"


class SetupError(Exception):
    """PostgreSQL cannot be used as asked (said in one line)."""


class Throwaway:
    """A PostgreSQL cluster for one run of a script; ``url`` is its first database's."""

    def __init__(self, dbname: str):
        self.folder = Path(tempfile.mkdtemp(prefix="simpul-pg-"))
        run = subprocess.run(["bash", str(SCRIPT), "start", str(self.folder), "auto", dbname],
                             capture_output=True, text=True)
        if run.returncode:
            self.stop()                                    # a server that started before a later step failed
            shutil.rmtree(self.folder, ignore_errors=True)  # (ours: made above)
            last = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SetupError(f"--postgres: cannot start PostgreSQL: {last}")
        self.url = run.stdout.strip()

    def database(self, name: str) -> str:
        """A new empty database on this cluster; its URL."""
        from sqlalchemy import create_engine
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if self.folder.exists():
            subprocess.run(["bash", str(SCRIPT), "stop", str(self.folder)], capture_output=True)


def check_empty(url: str) -> None:
    """Refuse a database that cannot be opened or holds tables already (a run counts every event in it)."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError
    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    except SQLAlchemyError as exc:
        raise SetupError(f"--hub-database: cannot open it: {str(exc.orig or exc).strip().splitlines()[0]}") \
            from None
    finally:
        engine.dispose()
    if tables:
        raise SetupError(f"--hub-database: it is not empty ({len(tables)} tables, e.g. {sorted(tables)[0]}); "
                         "give an empty database")
