"""``simpul demo``: a whole federation on loopback, with the sample complaints.

It starts the hub and the district nodes of a federation.json as real
processes (node.cluster), each with its own SQLite database in a temporary
folder, files every sample complaint at its ``filed_at`` node through the API,
shows the complaints syncing and routing, has operators follow up and close a
few tickets at the nodes that hold them, and ends with a table: where each
ticket was filed, where it landed, its status, and whether that is where it
belongs. A ticket with no expected institution belongs in the hub's
disposition queue. The exit code is 1 if any ticket is not where it belongs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field

from node import directory
from node.cli_common import fail_cleanly
from node.cluster import Cluster, ClusterError, simpul
from node.errors import ConfigError, ValidationError
from node.inputs import read_jsonl
from node.netlink import TcpLink
from node.samples import sample_dir

QUEUE = "(disposition queue)"


def default_federation() -> Path:
    """The sample's federation.json (node.samples: ../shared/data, else the copy shipped in node/sample_data)."""
    return sample_dir() / "federation.json"


class Demo:
    def __init__(self, cluster: Cluster, samples: list[dict], institutions: dict[str, dict], out=click.echo,
                 t0: float | None = None):
        self.t0 = time.monotonic() if t0 is None else t0
        self.c = cluster
        self.samples = samples
        self.institutions = institutions
        self.out = out
        self.ids: dict[str, str] = {}          # ref -> ticket id
        self.expected_status: dict[str, str] = {}
        self.tty = sys.stdout.isatty()
        self._last_line = ""

    # -- progress line ---------------------------------------------------------------
    def stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:4.1f}s]"

    def progress(self, text: str, final: bool = False) -> None:
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            click.echo(f"\r{f'{self.stamp()} {text}'[:width]:<{width}}", nl=final)
        elif text != self._last_line:
            click.echo(f"{self.stamp()} {text}")
        self._last_line = text

    # -- filing ------------------------------------------------------------------------
    def file_all(self) -> None:
        by_node: dict[str, list[dict]] = {}
        for s in self.samples:
            by_node.setdefault(s["filed_at"], []).append(s)

        def file_at(node_id: str, items: list[dict]) -> None:
            client = self.c.client(node_id, "intake")
            for s in items:
                self.ids[s["ref"]] = client.file(s, idempotency_key=f"demo-{s['ref']}")["ticket_id"]
                if self.tty:
                    self.progress(f"filed {len(self.ids)}/{len(self.samples)}")
        with ThreadPoolExecutor(max_workers=len(by_node)) as pool:
            for f in [pool.submit(file_at, n, items) for n, items in by_node.items()]:
                f.result()
        self.progress(f"filed {len(self.ids)}/{len(self.samples)} complaints at "
                      f"{len(by_node)} nodes ({', '.join(f'{n}: {len(i)}' for n, i in by_node.items())})",
                      final=True)

    # -- where things are --------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, dict]]:
        """node id -> ticket id -> ticket, for every node of the cluster; QUEUE -> the hub's disposition queue."""
        snap = {n: {t["ticket_id"]: t for t in self.c.client(n).iter_tickets()} for n in self.c.node_ids}
        snap[QUEUE] = {t["ticket_id"]: t for t in self.c.client(self.c.hub_id).disposition()}
        return snap

    def verdict(self, s: dict, snap: dict) -> tuple[bool, str]:
        """Is the sample's ticket where it belongs, consistently on hub, holder and origin?"""
        tid, want = self.ids[s["ref"]], s.get("expected_institution")
        at_hub = snap[self.c.hub_id].get(tid)
        if at_hub is None:
            return False, "not at the hub yet"
        if want is None:
            queue = snap[QUEUE]
            return (tid in queue, "in disposition queue" if tid in queue else f"not queued ({at_hub['status']})")
        status = self.expected_status.get(s["ref"], "dispositioned")
        holder = self.institutions.get(want, {}).get("node")
        for where in {self.c.hub_id, holder, s["filed_at"]}:
            t = snap.get(where, {}).get(tid)
            if t is None or t["institution"] != want or t["status"] != status:
                seen = "missing" if t is None else f"{t['institution']} / {t['status']}"
                return False, f"{where}: {seen}"
        return True, ""

    def routing_counts(self, snap: dict) -> str:
        """filed · synced to the hub · routed (and queued) · landed at the holder · consistent everywhere."""
        hub, ids = snap[self.c.hub_id], self.ids
        synced = sum(1 for tid in ids.values() if tid in hub)
        routable = [s for s in self.samples if s.get("expected_institution")]
        routed = sum(1 for s in routable if hub.get(ids[s["ref"]], {}).get("institution") == s["expected_institution"])
        queued = sum(1 for tid in ids.values() if tid in snap[QUEUE])
        landed = sum(1 for s in routable if snap.get(self.institutions[s["expected_institution"]]["node"], {}).get(
            ids[s["ref"]], {}).get("institution") == s["expected_institution"])
        ok = sum(1 for s in self.samples if self.verdict(s, snap)[0])
        return (f"filed {len(ids)} · at hub {synced} · routed {routed}/{len(routable)} · disposition queue {queued}"
                f" · at holder {landed}/{len(routable)} · settled {ok}/{len(self.samples)}")

    def wait_settled(self, timeout: float, label: str) -> dict:
        state = {}

        def settled() -> bool:
            state["snap"] = snap = self.snapshot()
            line = self.routing_counts(snap)
            self.progress(f"{label}: {line}")
            return all(self.verdict(s, snap)[0] for s in self.samples)
        try:
            self.c.wait_until(settled, timeout, interval=0.3, what=label)
        except TimeoutError:
            self.progress(f"{label}: timed out after {timeout:.0f}s", final=True)
            return state.get("snap") or self.snapshot()
        self.progress(f"{label}: {self.routing_counts(state['snap'])}", final=True)
        return state["snap"]

    # -- operators at work ---------------------------------------------------------------
    def operators(self, snap: dict, count: int = 4) -> list[str]:
        """Follow up and close a few tickets at their holder nodes; one more only gets a follow-up."""
        routed = [s for s in self.samples if s.get("expected_institution")]
        holder_of = {s["ref"]: self.institutions[s["expected_institution"]]["node"] for s in routed}
        # one ticket per holder node, preferring tickets filed elsewhere (status has to travel back)
        routed.sort(key=lambda s: holder_of[s["ref"]] == s["filed_at"])
        picked: list[dict] = []
        for s in routed:
            if holder_of[s["ref"]] not in {holder_of[p["ref"]] for p in picked}:
                picked.append(s)
        for i, s in enumerate(picked[:count + 1]):
            holder = self.institutions[s["expected_institution"]]["node"]
            op = self.c.client(holder, "operator")
            tid = self.ids[s["ref"]]
            op.act(tid, "accept", actor=f"operator {holder}")
            op.act(tid, "follow_up", text="Sudah ditindaklanjuti: petugas meninjau lokasi dan menjadwalkan perbaikan.",
                   actor=f"operator {holder}")
            if i < count:
                op.act(tid, "close", actor=f"operator {holder}")
                self.expected_status[s["ref"]] = "closed"
            else:
                self.expected_status[s["ref"]] = "followed_up"
            self.out(f"  {s['ref']} at {holder} ({s['expected_institution']}): accepted, followed up"
                     f"{', closed' if i < count else ''}  (filed at {s['filed_at']})")
        return [s["ref"] for s in picked[:count + 1]]

    # -- the table -------------------------------------------------------------------------
    def table(self, snap: dict) -> int:
        hub = snap[self.c.hub_id]
        rows, bad = [], 0
        for s in self.samples:
            tid, want = self.ids[s["ref"]], s.get("expected_institution")
            t = hub.get(tid) or {}
            ok, why = self.verdict(s, snap)
            bad += not ok
            if t.get("institution"):
                landed = f"{t['institution']} @ {t.get('holder_node')}"
            elif tid in snap[QUEUE]:
                landed = "hub disposition queue"
            else:
                landed = "-"
            rows.append((s["ref"], s["filed_at"], landed, t.get("status", "missing"),
                         want or "(disposition queue)", ("✓" if ok else f"✗ {why}")))
        head = ("ref", "filed at", "landed at (institution @ node)", "status", "expected", "match")
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[5]
        self.out(line)
        self.out("-" * min(len(line) + 10, 160))
        for r in rows:
            self.out("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[5])
        self.out(f"{len(rows) - bad}/{len(rows)} tickets where they belong")
        self.journeys(snap)
        return bad

    def journeys(self, snap: dict) -> None:
        """How the tickets that came back as bukan wewenang travelled (from the hub's copy of their log)."""
        refs = {tid: ref for ref, tid in self.ids.items()}
        for tid, t in snap[self.c.hub_id].items():
            if tid not in refs or not t.get("returned_by"):
                continue
            steps = []
            for e in sorted(self.c.client(self.c.hub_id).events(tid), key=lambda e: (e["hlc"], e["author"])):
                if e["type"] == "routed":
                    steps.append(f"routed to {e['payload']['institution']} ({e['payload'].get('reason', '')})")
                elif e["type"] == "returned":
                    steps.append(f"returned by {e['author']}: {e['payload'].get('reason', '')}")
            self.out(f"{refs[tid]}: " + " → ".join(steps))


PARTITIONED = "kab-ppu"   # the district whose links to the hub go through cuttable loopback links


def partition_links(cluster: Cluster, node_id: str = PARTITIONED) -> tuple[TcpLink, TcpLink] | None:
    """Before start-up: route ``node_id``'s traffic to and from the hub through cuttable links."""
    if node_id not in cluster.procs:
        return None
    to_hub, to_node = TcpLink(cluster.proc(cluster.hub_id).port), TcpLink(cluster.proc(node_id).port)
    cluster.proc(node_id).env["SIMPUL_HUB__URL"] = to_hub.url
    keys = cluster.base_dir / f"{node_id}.keys.json"
    code, out = simpul("nodes", "enroll", "--config", str(cluster.proc(cluster.hub_id).config), "--keys", str(keys),
                       "--url", to_node.url)
    if code:
        raise ClusterError(f"re-enrolling {node_id} behind a link failed: {out}")
    return to_hub, to_node


def demo_conflict(d: Demo, links: tuple[TcpLink, TcpLink] | None, busy: list[str], timeout: float) -> str:
    """A real partition: the hub archives a ticket while its holder follows up and closes it.

    When the link heals both sides see the same conflict; the hub's admin picks
    the holder's side and every replica converges on it.
    """
    if links is None:
        return "skipped: no partitioned district in this federation"
    c = d.c
    node_id = PARTITIONED
    hub, node = c.client(c.hub_id), c.client(node_id, "operator")
    candidates = [s for s in d.samples if s.get("expected_institution") and s["ref"] not in busy
                  and d.institutions[s["expected_institution"]]["node"] == node_id]
    if not candidates:
        return f"skipped: no ticket held by {node_id}"
    ref = candidates[-1]["ref"]
    tid = d.ids[ref]
    node.act(tid, "accept", actor=f"operator {node_id}")
    c.wait_until(lambda: hub.ticket(tid)["status"] == "in_progress", timeout, what="the hub to see in_progress")
    for link in links:
        link.cut()
    d.out(f"  {ref}: link {node_id} <-> {c.hub_id} cut; the hub archives it while {node_id} follows up and closes it")
    hub.act(tid, "archive", reason="dianggap laporan ganda", actor="admin hub")
    node.act(tid, "follow_up", text="Tim sudah memperbaiki lokasi.", actor=f"operator {node_id}")
    node.act(tid, "close", text="Selesai ditangani.", actor=f"operator {node_id}")
    for link in links:
        link.heal()

    def seen_on_both():
        on_hub = hub.get("/api/v1/conflicts?status=open")["items"]
        on_node = c.client(node_id).get("/api/v1/conflicts?status=open")["items"]
        return on_hub if on_hub and [x["id"] for x in on_hub] == [x["id"] for x in on_node] else None
    conflict = c.wait_until(seen_on_both, timeout, what="the conflict on both sides")[0]
    detail = hub.get(f"/api/v1/conflicts/{conflict['id']}")
    side = next(x["label"] for x in detail["sides"] if x["author"] == node_id)
    d.out(f"  link healed: conflict {conflict['id'][:12]} ({detail['kind']}) on hub and {node_id}; "
          f"provisional winner {detail['provisional_winner']}, differs in {', '.join(detail['differs'])}")
    hub.post(f"/api/v1/conflicts/{conflict['id']}/resolve",
             {"winner": side, "reason": "Tindak lanjut OPD sah; arsip dibatalkan", "actor": "admin hub"})
    c.wait_until(lambda: c.client(node_id).get(f"/api/v1/conflicts/{conflict['id']}")["status"] == "resolved",
                 timeout, what="the resolution at the node")
    d.expected_status[ref] = "closed"
    return f"{ref} resolved at the hub for {node_id}'s side (closed); the node shows it resolved"


class Sample(BaseModel):
    """A line of complaints.jsonl: a complaint's request body plus where it is filed and where it belongs."""
    model_config = ConfigDict(extra="allow")
    ref: str = Field(min_length=1)
    filed_at: str = Field(min_length=1)
    expected_institution: str | None = None


def read_inputs(fed_path: Path, comp_path: Path) -> tuple[list[dict], dict[str, dict]]:
    """The samples and the federation's institutions by id, checked before any process starts."""
    fed = directory.read_federation(fed_path)
    if not any(n.role == "hub" for n in fed.nodes):
        raise ConfigError(f"federation_file: {fed_path} names no hub node")
    nodes = {n.node_id for n in fed.nodes}
    institutions = {i.id: i.model_dump() for i in fed.institutions}
    samples = read_jsonl(comp_path, "complaints", Sample)
    if not samples:
        raise ValidationError(f"complaints: {comp_path} holds no complaints")
    for s in samples:
        where = f"complaints: {comp_path}: {s.ref}"
        if s.filed_at not in nodes:
            raise ValidationError(f"{where} is filed at {s.filed_at}, which is not a node of {fed_path}")
        want = s.expected_institution
        if want is not None and institutions.get(want, {}).get("node") not in nodes:
            raise ValidationError(f"{where} belongs to {want}, which is not an institution of a node of {fed_path}")
    return [s.model_dump(exclude_unset=True) for s in samples], institutions


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


@click.command()
@click.option("--federation", "federation_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="federation.json (default: ../shared/data next to the repository, else the bundled copy)")
@click.option("--complaints", "complaints_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="complaints.jsonl (default: next to the federation file)")
@click.option("--keep", is_flag=True, help="leave the federation running until Ctrl-C")
@click.option("--manifest", "manifest_file", type=click.Path(dir_okay=False), default=None,
              help="write a JSON description of the running federation here once it is up")
@click.option("--dir", "base_dir", type=click.Path(file_okay=False), default=None,
              help="use this (empty) folder instead of a temporary one; it is kept afterwards")
@click.option("--timeout", type=float, default=40.0, show_default=True, help="seconds to wait for routing")
@fail_cleanly
def demo(federation_file, complaints_file, keep, manifest_file, base_dir, timeout):
    """Run a hub and the districts on loopback and route the sample complaints."""
    t0 = time.monotonic()
    fed_path = Path(federation_file) if federation_file else default_federation()
    comp_path = Path(complaints_file) if complaints_file else fed_path.with_name("complaints.jsonl")
    samples, institutions = read_inputs(fed_path, comp_path)
    if manifest_file:   # known before five processes start, not once they are up
        folder = Path(manifest_file).absolute().parent
        if not folder.is_dir():
            raise ConfigError(f"--manifest: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"--manifest: folder {folder} is not writable")
    temp = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="simpul-demo-") if temp else base_dir)
    cluster = Cluster(base, fed_path)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the federation even where the demo was started with SIGINT ignored (from a script's
    # background job, say), which Python keeps: --keep would otherwise ignore it and run on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bad, links = 1, None
    try:
        click.echo(f"simpul demo: {len(cluster.node_ids)} nodes from {fed_path}, {len(samples)} complaints "
                   f"from {comp_path.name}; folder {base}")
        cluster.init()
        links = partition_links(cluster)
        click.echo(f"[{time.monotonic() - t0:4.1f}s] initialised {', '.join(cluster.node_ids)} "
                   f"(keys, SQLite databases, enrolment at {cluster.hub_id})")
        cluster.start()
        click.echo(f"[{time.monotonic() - t0:4.1f}s] {len(cluster.procs)} processes up: "
                   + ", ".join(f"{n} :{p.port} (pid {p.popen.pid})" for n, p in cluster.procs.items()))
        if manifest_file:
            try:
                Path(manifest_file).write_text(json.dumps(cluster.manifest(), indent=2))
            except OSError as exc:
                raise ConfigError(f"--manifest: cannot write {manifest_file}: {exc.strerror}") from exc
            click.echo(f"          manifest written to {manifest_file}")
        d = Demo(cluster, samples, institutions, t0=t0)
        d.file_all()
        snap = d.wait_settled(timeout, "routing")
        click.echo(f"[{time.monotonic() - t0:4.1f}s] operators at work:")
        busy = d.operators(snap)
        click.echo(f"[{time.monotonic() - t0:4.1f}s] a partition and a conflict:")
        click.echo(f"[{time.monotonic() - t0:4.1f}s] conflict: {demo_conflict(d, links, busy, timeout / 2)}")
        snap = d.wait_settled(timeout / 2, "status back")
        click.echo("")
        bad = d.table(snap)
        click.echo("")
        if keep:
            click.echo("admin consoles (user admin):")
        else:
            click.echo("admin consoles (user admin), open while the federation runs: "
                       "'simpul demo --keep' keeps it running until Ctrl-C:")
        for name, p in cluster.procs.items():
            click.echo(f"  {name:<16} {p.url}/admin/   password {cluster.settings(name)['admin_password']}")
        if keep or not temp:   # (only paths that outlive this output)
            click.echo(f"API tokens: [tokens] in {base}/<node>/simpul.toml; logs in {base}/<node>/node.log")
        if not keep and temp:
            click.echo(f"the federation stops now, and its temporary folder {base} is removed "
                       "(--dir FOLDER keeps the databases, keys, tokens and logs)")
        elif not keep:
            click.echo(f"the federation stops now; its databases, keys, tokens and logs stay in {base}")
        click.echo(f"done in {time.monotonic() - t0:.1f}s")
        if keep:
            click.echo("--keep: the federation keeps running; Ctrl-C stops it"
                       + (" and removes its temporary folder" if temp else ""))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("\nstopping")
    finally:
        cluster.close()
        for link in links or ():
            link.close()
        if temp:
            shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if bad else 0)
