"""A whole federation as real, separate processes on 127.0.0.1.

``Cluster`` sets up the hub and the district nodes of a federation.json the
way an operator would -- ``simpul init`` for each node, ``simpul keys show
--json``, ``simpul nodes enroll`` at the hub -- by calling those very CLI
commands in-process (same code paths, no extra interpreter start-up), then
runs every node as its own ``python -m node.cli run`` process with its log in
its data folder. It is the one harness behind ``simpul demo``, the acceptance
tests and the soak/bench scripts, so they all exercise the real thing: real
sockets, real signatures, real databases, real crashes (SIGKILL).

Processes are addressed by name: a node's id, or ``nasional+2`` for an extra
hub process started with ``start_extra_hub`` (same config and database,
another port) -- the stateless-hubs-over-one-PostgreSQL deployment.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from node.cluster_client import NodeClient

T = TypeVar("T")

# Fast sync for tests and the demo: the defaults (seconds to minutes) suit production.
FAST_ENV = {
    "SIMPUL_SYNC__WAKE_INTERVAL_S": "0.5",
    "SIMPUL_SYNC__PULL_INTERVAL_S": "1",
    "SIMPUL_SYNC__BACKOFF_BASE_S": "0.5",
    "SIMPUL_SYNC__BACKOFF_CAP_S": "3",
    "SIMPUL_SYNC__RETRY_ATTEMPTS": "2",
    "SIMPUL_SYNC__RETRY_INITIAL_S": "0.1",
    "SIMPUL_SYNC__REQUEST_TIMEOUT_S": "5",
    "SIMPUL_SYNC__LEASE_TTL_S": "10",
}


# ``python -m node.cli`` would import node.cli twice (as __main__ and via node.cli_admin); this doesn't.
RUN = "from node.cli import main; main(prog_name='simpul')"


class ClusterError(Exception):
    pass


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def simpul(*args: str) -> tuple[int, str]:
    """Run a ``simpul`` CLI command in this process; return (exit code, stdout + stderr)."""
    from node.cli import main
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main.main(args=list(args), prog_name="simpul", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue()


def _must(*args: str) -> str:
    code, out = simpul(*args)
    if code:
        raise ClusterError(f"simpul {' '.join(args)} failed ({code}): {out.strip()}")
    return out


@dataclass
class Proc:
    """One server process of the cluster (a node, or an extra hub process)."""
    name: str
    node_id: str
    role: str
    data_dir: Path
    config: Path
    port: int
    log_path: Path
    env: dict
    popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Cluster:
    def __init__(self, base_dir, federation_file, node_ids: list[str] | None = None, env: dict | None = None,
                 database_urls: dict[str, str] | None = None, python: str = sys.executable):
        self.base_dir = Path(base_dir).resolve()
        self.federation_file = Path(federation_file).resolve()
        fed = json.loads(self.federation_file.read_text(encoding="utf-8"))
        self.hub = next(n for n in fed["nodes"] if n.get("role") == "hub")
        districts = [n for n in fed["nodes"] if n.get("role", "district") == "district"]
        if node_ids is not None:
            unknown = set(node_ids) - {n["node_id"] for n in districts} - {self.hub["node_id"]}
            if unknown:
                raise ClusterError(f"not district nodes of {self.federation_file}: {sorted(unknown)}")
            districts = [n for n in districts if n["node_id"] in node_ids]
        self.districts = districts
        self.hub_id: str = self.hub["node_id"]
        self.env = {**FAST_ENV, **(env or {})}
        self.database_urls = database_urls or {}
        self.python = python
        self.procs: dict[str, Proc] = {}

    # -- setting up ----------------------------------------------------------------
    @property
    def node_ids(self) -> list[str]:
        return [self.hub_id] + [n["node_id"] for n in self.districts]

    def init(self) -> Cluster:
        """init every node, enroll every district at the hub (what an operator does by hand)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(self.node_ids, free_ports(len(self.node_ids))))
        fed = str(self.federation_file)
        hub_dir = self.base_dir / self.hub_id
        _must("init", "--role", "hub", "--node-id", self.hub_id, "--data-dir", str(hub_dir), "--port",
              str(ports[self.hub_id]), "--name", self.hub.get("name", ""), "--federation", fed,
              *self._db_args(self.hub_id))
        self._add(self.hub_id, self.hub_id, "hub", hub_dir, ports[self.hub_id])
        hub_keys = self.base_dir / f"{self.hub_id}.keys.json"
        hub_keys.write_text(_must("keys", "show", "--json", "--config", str(self.procs[self.hub_id].config)))
        for n in self.districts:
            nid, d = n["node_id"], self.base_dir / n["node_id"]
            region = ("--region", n["region"]) if n.get("region") else ()
            _must("init", "--role", "district", "--node-id", nid, "--data-dir", str(d), "--port", str(ports[nid]),
                  "--name", n.get("name", ""), *region, "--federation", fed, "--hub-url", self.url(self.hub_id),
                  "--hub-keys", str(hub_keys), *self._db_args(nid))
            self._add(nid, nid, "district", d, ports[nid])
            keys_file = self.base_dir / f"{nid}.keys.json"
            keys_file.write_text(_must("keys", "show", "--json", "--config", str(d / "simpul.toml")))
            _must("nodes", "enroll", "--config", str(self.procs[self.hub_id].config), "--keys", str(keys_file),
                  "--name", n.get("name", ""), *region)
        return self

    def _db_args(self, node_id: str) -> tuple[str, ...]:
        url = self.database_urls.get(node_id)
        return ("--database-url", url) if url else ()

    def _add(self, name: str, node_id: str, role: str, data_dir: Path, port: int, env: dict | None = None,
             log_name: str = "node.log") -> Proc:
        proc = Proc(name, node_id, role, data_dir, data_dir / "simpul.toml", port, data_dir / log_name, env or {})
        self.procs[name] = proc
        return proc

    def start_extra_hub(self, port: int | None = None, env: dict | None = None, wait: bool = True) -> str:
        """Another process of the hub: same config, keys and database, another port. Returns its name."""
        hub = self.procs[self.hub_id]
        n = sum(1 for p in self.procs.values() if p.node_id == self.hub_id) + 1
        taken = {p.port for p in self.procs.values()}
        port = port or next(p for p in free_ports(len(taken) + 1) if p not in taken)
        name = f"{self.hub_id}+{n}"
        self._add(name, self.hub_id, "hub", hub.data_dir, port, {"SIMPUL_PORT": str(port), **(env or {})},
                  log_name=f"node+{n}.log")
        self.start(name, wait=wait)
        return name

    # -- running -------------------------------------------------------------------
    def proc(self, name: str) -> Proc:
        try:
            return self.procs[name]
        except KeyError:
            raise ClusterError(f"no process {name!r}; known: {', '.join(self.procs)}") from None

    def start(self, name: str | None = None, env: dict | None = None, wait: bool = True) -> None:
        """Start one process (or all that are not running); wait until /healthz answers."""
        names = [name] if name else [n for n, p in self.procs.items() if not p.running]
        for n in names:
            p = self.proc(n)
            if p.running:
                continue
            if env is not None:
                p.env = {**p.env, **env}
            log = open(p.log_path, "ab")
            p.popen = subprocess.Popen(
                [self.python, "-c", RUN, "run", "--config", str(p.config)],
                cwd=p.data_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **p.env}, start_new_session=True)
            log.close()
        if wait:  # (all of them: some may have been started with wait=False)
            for n in names if name else [n for n, p in self.procs.items() if p.running]:
                self.wait_healthy(n)

    def wait_healthy(self, name: str, timeout: float = 60.0) -> None:
        p = self.proc(name)
        client = NodeClient(p.url, "")

        def up() -> bool:
            if not p.running:
                raise ClusterError(f"{name} exited with {p.popen.returncode if p.popen else '?'} before it "
                                   f"answered; log {p.log_path}:\n{self.log_tail(name)}")
            return client.healthy()
        self.wait_until(up, timeout, what=f"{name} to answer /healthz")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal a process and wait for it to end (SIGKILL after ``timeout``); return its exit code."""
        p = self.proc(name)
        if p.popen is None:
            return None
        if p.popen.poll() is None:
            p.popen.send_signal(sig)
            try:
                p.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout)
        return p.popen.returncode

    def kill(self, name: str) -> int | None:
        return self.stop(name, signal.SIGKILL)

    def restart(self, name: str, env: dict | None = None) -> None:
        self.stop(name)
        self.start(name, env=env)

    def close(self) -> None:
        """Stop every process (TERM, then KILL the stragglers)."""
        for p in self.procs.values():
            if p.running:
                p.popen.send_signal(signal.SIGTERM)
        for name in self.procs:
            self.stop(name, timeout=10.0)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- looking at it -------------------------------------------------------------
    def url(self, name: str) -> str:
        return self.proc(name).url

    def settings(self, name: str) -> dict:
        return tomllib.loads(self.proc(name).config.read_text(encoding="utf-8"))

    def tokens(self, name: str) -> dict:
        return dict(self.settings(name)["tokens"])

    def client(self, name: str, role: str = "admin") -> NodeClient:
        return NodeClient(self.url(name), self.tokens(name)[role])

    def manifest(self) -> dict:
        procs = []
        for p in self.procs.values():
            cfg = self.settings(p.name)
            procs.append({"name": p.name, "node_id": p.node_id, "role": p.role, "url": p.url,
                          "pid": p.popen.pid if p.running else None, "data_dir": str(p.data_dir),
                          "config": str(p.config), "log": str(p.log_path), "tokens": dict(cfg["tokens"]),
                          "admin_password": cfg["admin_password"], "console": f"{p.url}/admin/",
                          "database_url": cfg.get("database_url") or f"sqlite:///{p.data_dir / 'simpul.db'}"})
        return {"hub": self.hub_id, "federation_file": str(self.federation_file), "base_dir": str(self.base_dir),
                "processes": procs}

    def log_text(self, name: str) -> str:
        path = self.proc(name).log_path
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def verify(self, node_id: str) -> tuple[int, str]:
        """``simpul verify`` for a node (its log's hashes, chains and signatures)."""
        return simpul("verify", "--config", str(self.proc(node_id).config))

    @staticmethod
    def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2,
                   what: str = "condition") -> T:
        """Poll ``predicate`` until it returns something truthy; return that. Raise TimeoutError."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except ClusterError:
                raise
            except Exception as exc:  # noqa: BLE001 - a node may be restarting; remember and retry
                last_error = exc
            if time.monotonic() > deadline:
                hint = f" (last error: {last_error})" if last_error else ""
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
            time.sleep(interval)
