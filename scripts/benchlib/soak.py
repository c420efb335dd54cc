"""``scripts/soak``: a hub and three districts under load and faults, then the convergence checks.

Real processes on 127.0.0.1 (node.cluster). For ``--minutes`` it runs, in
threads, at bounded rates:

- filing: sample-shaped complaints at random districts (intake token,
  Idempotency-Key, retried until the node answers);
- operators: at the node that holds a ticket, accept / follow up / close it;
- hub admins: route tickets waiting in the disposition queue, and now and then
  archive one (sometimes while its holder is still working on it, which makes
  a real conflict);
- chaos (main thread): SIGKILL a random process and restart it a few seconds
  later; take the hub away for a while and bring it back; copy a district's
  database while it runs, and later lose its disk and restore that copy
  (sometimes while the hub is away, so that it files on the older chain
  before it can take its own back: node.chain).

A district's disk is lost only once its queue to the hub is empty, with
filing and operators kept away from it meanwhile: what a lost disk takes
with it unsent is lost for good, and is no fault of the software.

Then the faults stop, every process runs, and it waits for quiescence (no queue
non-empty anywhere, and two identical check rounds) before the checks in
``benchlib.soak_check``. Exit status 1 on any problem.

The hub keeps a SQLite file by default. ``--postgres`` puts it on a throwaway
PostgreSQL cluster (``benchlib.pg``), and ``--hub-database URL`` on an empty
database of your own: the national hub's production shape. ``--hub-processes
N`` then runs N processes of the hub over that one database, each district
talking to one of them, and the faults hit each process on its own (a hub
outage takes them all away).
"""
from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchlib import pg, setup, soak_check
from benchlib.common import hub_id, institutions, samples, say
from benchlib.gen import generate

DISTRICTS = ("kab-paser", "kab-ppu", "kota-balikpapan")
ENV = {"SIMPUL_SYNC__ANTI_ENTROPY_INTERVAL_S": "10"}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="how long the load and the faults last (default 3)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    p.add_argument("--rate", type=float, default=8.0, help="complaints filed per second (default 8)")
    p.add_argument("--settle", type=float, default=240.0, help="seconds allowed to converge afterwards")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed on success)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    db = p.add_mutually_exclusive_group()
    db.add_argument("--postgres", action="store_true",
                    help="put the hub on a throwaway PostgreSQL cluster, removed afterwards (needs Debian's "
                         "postgresql package)")
    db.add_argument("--hub-database", metavar="URL", default=None,
                    help="put the hub on this empty PostgreSQL database (postgresql+psycopg://...)")
    p.add_argument("--hub-processes", type=int, default=1, metavar="N",
                   help="processes of the hub over its one database (default 1; more need a PostgreSQL hub)")
    args = p.parse_args(argv)
    if args.hub_processes < 1 or args.hub_processes > len(DISTRICTS):
        p.error(f"--hub-processes: give 1 to {len(DISTRICTS)} (one district per process at least)")
    if args.hub_processes > 1 and not (args.postgres or args.hub_database):
        p.error("--hub-processes above 1 needs --postgres or --hub-database: "
                "processes of a hub share its database, and a SQLite file is one process's")
    if args.hub_database and not args.hub_database.startswith("postgresql"):
        p.error("--hub-database: give a PostgreSQL URL (postgresql+psycopg://user@host:port/db)")
    return args


class Soak:
    def __init__(self, cluster, rng: random.Random, deadline: float, rate: float):
        self.c = cluster
        self.rng = rng
        self.deadline = deadline
        self.rate = rate
        self.stats: Counter = Counter()
        self.filed: dict[str, str] = {}          # ticket id -> origin
        self.lock = threading.Lock()
        self.hubs = [name for name, p in self.c.procs.items() if p.node_id == self.c.hub_id]
        self.hosted = {i: row["node"] for i, row in institutions().items()
                       if row["node"] in (self.c.hub_id, *DISTRICTS)}
        # complaints whose competent institution runs in this soak (prov-kaltim is not part of it)
        self.templates = [s for s in samples() if s.get("expected_institution") in self.hosted
                          or s.get("expected_institution") is None]
        self.paused: set[str] = set()            # districts whose disk is about to be lost
        self.copies: dict[str, Path] = {}        # district -> a copy of its database, taken while it ran

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def up(self, name: str) -> bool:
        return name not in self.paused and self.c.proc(name).running

    def hub(self) -> str | None:
        """A running process of the hub, at random (None while the hub is away)."""
        up = [name for name in self.hubs if self.up(name)]
        return self.rng.choice(up) if up else None

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    # -- load ------------------------------------------------------------------------
    def file_loop(self) -> None:
        pending: list[tuple[str, dict]] = []
        stream = generate(self.templates, 10**9, seed=self.rng.randrange(10**6), prefix="S")
        while self.running():
            time.sleep(self.rng.expovariate(self.rate))
            if not pending or self.rng.random() < 0.8:
                c = next(stream)
                pending.append((self.rng.choice(DISTRICTS), c))
            node, c = pending.pop(0)
            if not self.up(node):
                pending.append((node, c))
                continue
            try:
                got = self.c.client(node, "intake").file(c, idempotency_key=c["ref"])
            except Exception:  # noqa: BLE001 - killed mid-request, connection refused: file again later
                self.count("filing retried")
                pending.append((node, c))
                continue
            with self.lock:
                self.filed[got["ticket_id"]] = node
            self.count("complaints filed")

    def operator_loop(self) -> None:
        while self.running():
            time.sleep(self.rng.uniform(0.1, 0.4))
            with self.lock:
                if not self.filed:
                    continue
                tid = self.rng.choice(list(self.filed))
            hub = self.hub()
            if hub is None:
                continue
            try:
                t = self.c.client(hub).find(tid)
                holder = t and t.get("holder_node")
                if not holder or not self.up(holder):
                    continue
                local = self.c.client(holder, "operator").find(tid)
                if local is None or local.get("holder_node") != holder:
                    continue
                action = {"dispositioned": "accept", "in_progress": "follow_up", "reopened": "follow_up",
                          "followed_up": self.rng.choice(["follow_up", "close", "close"])}.get(local["status"])
                if action is None:
                    continue
                fields = {"text": "Petugas sudah meninjau dan menindaklanjuti laporan."} if action == "follow_up" \
                    else {}
                self.c.client(holder, "operator").act(tid, action, actor=f"operator {holder}", **fields)
                self.count(f"operator {action}")
            except Exception as exc:  # noqa: BLE001 - a refusal (the ticket moved) or a node going down
                self.count(f"operator refused ({getattr(exc, 'status', type(exc).__name__)})")

    def hub_loop(self) -> None:
        while self.running():
            time.sleep(self.rng.uniform(0.5, 1.5))
            hub = self.hub()
            if hub is None:
                continue
            try:
                admin = self.c.client(hub)
                if self.rng.random() < 0.85:
                    queue = admin.disposition()
                    if not queue:
                        continue
                    t = self.rng.choice(queue)
                    inst = self.rng.choice(sorted(self.hosted))
                    admin.act(t["ticket_id"], "route", institution=inst, reason="disposisi manual (soak)")
                    self.count("hub route")
                else:
                    status = "closed" if self.rng.random() < 0.7 else "in_progress"
                    page = admin.get(f"/api/v1/complaints?status={status}&limit=50")["items"]
                    if not page:
                        continue
                    admin.act(self.rng.choice(page)["ticket_id"], "archive", reason="arsip (soak)")
                    self.count(f"hub archive ({status})")
            except Exception as exc:  # noqa: BLE001 - refused (moved on meanwhile) or the hub went down
                self.count(f"hub action refused ({getattr(exc, 'status', type(exc).__name__)})")

    # -- faults ----------------------------------------------------------------------
    def chaos(self) -> None:
        names = [*self.hubs, *DISTRICTS]
        while self.running():
            time.sleep(self.rng.uniform(6, 14))
            if not self.running():
                break
            roll = self.rng.random()
            if roll < 0.25:
                self.copy_or_restore()
            elif roll < 0.5:
                say(f"  [{self.clock()}] hub outage")
                for name in self.hubs:
                    self.c.kill(name)
                self.count("hub outages")
                time.sleep(self.rng.uniform(5, 15))
                for name in self.hubs:
                    self.c.start(name)
                say(f"  [{self.clock()}] hub back")
            else:
                victim = self.rng.choice(names)
                self.c.kill(victim)
                self.count(f"SIGKILL {victim}")
                say(f"  [{self.clock()}] SIGKILL {victim}")
                time.sleep(self.rng.uniform(0.5, 5))
                self.c.start(victim)
            self.count("restarts")

    def _db(self, name: str) -> Path:
        return self.c.proc(name).data_dir / "simpul.db"

    def copy_or_restore(self) -> None:
        """Copy a running district's database (SQLite's online backup), or restore a district from its copy."""
        with_copy = [d for d in DISTRICTS if d in self.copies and self.up(d)]
        if not with_copy or self.rng.random() < 0.4:
            name = self.rng.choice([d for d in DISTRICTS if self.up(d)] or [None])
            if name is not None:
                self.copies[name] = self.c.base_dir / f"{name}.copy.db"
                with sqlite3.connect(self._db(name)) as src, sqlite3.connect(self.copies[name]) as dst:
                    src.backup(dst)
                self.count("database copies")
                say(f"  [{self.clock()}] {name}'s database copied")
            return
        name = self.rng.choice(with_copy)
        self.paused.add(name)
        try:
            time.sleep(1)    # (a filing or an action already on its way lands first)
            client = self.c.client(name)
            self.c.wait_until(lambda: all(p["queue_depth"] == 0 for p in client.sync_status()["peers"]
                                          if p["peer"] == self.c.hub_id), 60, what=f"{name}'s queue to drain")
        except Exception:  # noqa: BLE001 - the hub is away, or a restart is slow: lose this disk another time
            self.paused.discard(name)
            return
        away = self.rng.random() < 0.5
        self.c.kill(name)
        if away:
            for hub in self.hubs:
                self.c.kill(hub)
        with sqlite3.connect(self.copies.pop(name)) as src, sqlite3.connect(self._db(name)) as dst:
            src.backup(dst)
        self.c.start(name)
        self.paused.discard(name)
        self.count("restores from a copy" + (" (hub away)" if away else ""))
        say(f"  [{self.clock()}] {name}'s disk lost: restored from its copy" + (" while the hub is away" if away
                                                                                  else ""))
        if away:
            time.sleep(self.rng.uniform(5, 10))   # (it files on its older chain meanwhile)
            for hub in self.hubs:
                self.c.start(hub)
            say(f"  [{self.clock()}] hub back")

    def clock(self) -> str:
        return f"{time.monotonic() - self.t0:5.0f}s"

    def run(self) -> None:
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=fn, name=fn.__name__, daemon=True)
                   for fn in (self.file_loop, self.operator_loop, self.hub_loop)]
        for t in threads:
            t.start()
        self.chaos()
        for t in threads:
            t.join(timeout=60)


def converge(cluster, soak: Soak, timeout: float) -> tuple[list[str], dict]:
    """Wait for quiescence and two identical check rounds; return the last round's (problems, facts)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        ok, busy = soak_check.quiet(cluster)
        if ok:
            problems, facts = soak_check.check(cluster, soak.filed)
            if not problems or (last is not None and problems == last):
                return problems, facts
            last = problems
        if time.monotonic() > deadline:
            if not ok:
                return [f"not quiescent after {timeout:.0f}s: {busy}"], {}
            return problems, facts
        time.sleep(3)


def spread_districts(cluster, processes: int) -> None:
    """Extra processes of the hub on their own ports, each district pointed at one of them in turn."""
    from node.cluster import free_ports
    taken = {p.port for p in cluster.procs.values()}
    ports = [p for p in free_ports(len(taken) + processes) if p not in taken][:processes - 1]
    for i, district in enumerate(DISTRICTS):
        if i % processes:
            cluster.proc(district).env["SIMPUL_HUB__URL"] = f"http://127.0.0.1:{ports[i % processes - 1]}"
    for port in ports:
        cluster.start_extra_hub(port=port, wait=False)


def main(argv=None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    rng = random.Random(seed)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="simpul-soak-"))
    try:
        pg_cluster = pg.Throwaway("simpul_soak") if args.postgres else None
        url = pg_cluster.url if pg_cluster else args.hub_database
        if args.hub_database:
            pg.check_empty(url)
    except pg.SetupError as exc:
        say(f"scripts/soak: {exc}")
        return 2
    storage = "SQLite" if url is None else f"PostgreSQL ({url})"
    say(f"scripts/soak: {args.minutes:g} min, seed {seed}, hub ({args.hub_processes} process(es), {storage}) + "
        f"{', '.join(DISTRICTS)}; folder {base}")
    ok = False
    try:
        cluster = setup.federation(base, node_ids=list(DISTRICTS), env=ENV,
                                   database_urls={hub_id(): url} if url else None)
    except BaseException:
        if pg_cluster:
            pg_cluster.stop()
        raise
    try:
        if args.hub_processes > 1:
            spread_districts(cluster, args.hub_processes)
        cluster.start()
        say(f"  {len(cluster.procs)} processes up; load and faults for {args.minutes:g} min ...")
        soak = Soak(cluster, rng, time.monotonic() + 60 * args.minutes, args.rate)
        soak.run()
        say(f"  [{soak.clock()}] faults stopped; every process running; waiting for quiescence ...")
        cluster.start()
        t = time.monotonic()
        problems, facts = converge(cluster, soak, args.settle)
        say(f"  [{soak.clock()}] checked after {time.monotonic() - t:.0f}s of settling")
        say("\nwhat it did:")
        for key, n in sorted(soak.stats.items()):
            say(f"  {key:<40} {n:>7,}")
        say("\nwhat it found:")
        for key, value in facts.items():
            say(f"  {key:<40} {value}")
        if problems:
            say(f"\n{len(problems)} problem(s):")
            for p in problems[:40]:
                say(f"  - {p}")
        else:
            say("\nall replicas converged; no event lost or duplicated; simpul verify passes on every node")
        ok = not problems
        return 0 if ok else 1
    finally:
        cluster.close()
        if pg_cluster and ok and not args.keep:
            pg_cluster.stop()
        elif pg_cluster:
            say(f"(the hub's PostgreSQL still runs for inspection, at {url}; "
                f"stop it with: scripts/pg-throwaway stop {pg_cluster.folder})")
        if ok and not args.dir and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not ok:
            say(f"(work folder kept for inspection: {base})")
