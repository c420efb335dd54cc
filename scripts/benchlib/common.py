"""Paths, sample data, process memory and plain-text tables for the scripts."""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def data_dir() -> Path:
    """The sample data (node.samples: ../shared/data, else the copy shipped in node/sample_data)."""
    from node.samples import sample_dir
    return sample_dir()


def federation_file() -> Path:
    return data_dir() / "federation.json"


def samples() -> list[dict]:
    path = data_dir() / "complaints.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def hub_id() -> str:
    fed = json.loads(federation_file().read_text(encoding="utf-8"))
    return next(n["node_id"] for n in fed["nodes"] if n.get("role") == "hub")


def institutions() -> dict[str, dict]:
    fed = json.loads(federation_file().read_text(encoding="utf-8"))
    return {i["id"]: i for i in fed["institutions"]}


def proc_memory(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of a live process, in MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def descendants(pid: int) -> list[int]:
    """The live processes started by ``pid``, and by them (a hub's check worker and multiprocessing's
    resource tracker)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def cpu_seconds(pid: int, helpers: list[int] | None = None) -> float:
    """User + system CPU seconds a live process and the processes it started (``helpers``, if the caller
    found them already: ``descendants`` reads every process's stat) have used so far."""
    total = 0.0
    for p in [pid, *(descendants(pid) if helpers is None else helpers)]:
        fields = _stat(p)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class ReadOnlyDb:
    """A read-only look at a node's SQLite file (WAL readers never block the node's writer)."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)

    def scalar(self, sql: str, *args):
        for _ in range(50):
            try:
                return self.conn.execute(sql, args).fetchone()[0]
            except sqlite3.OperationalError as exc:  # e.g. briefly locked during a checkpoint
                last = exc
                time.sleep(0.1)
        raise last

    def rows(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()

    def close(self) -> None:
        self.conn.close()


class PgDb:
    """The same look at a node's PostgreSQL database (a hub's), through its own short-lived engine."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        self.engine = create_engine(url, pool_size=1, max_overflow=0)

    def rows(self, sql: str) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]

    def scalar(self, sql: str, *args):
        with self.engine.connect() as conn:   # (the scripts' queries take ``?`` placeholders, as sqlite3)
            return conn.exec_driver_sql(sql.replace("?", "%s"), args).scalar()

    def close(self) -> None:
        self.engine.dispose()


def node_db(cluster, node_id: str) -> ReadOnlyDb | PgDb:
    """A read-only look at ``node_id``'s database, wherever the cluster keeps it."""
    url = cluster.database_urls.get(node_id)
    return PgDb(url) if url else ReadOnlyDb(cluster.proc(node_id).data_dir / "simpul.db")


def table(rows: list[tuple], head: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def say(text: str) -> None:
    print(text, flush=True)
