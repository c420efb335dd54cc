"""Acceptance: the sample federation as real processes on 127.0.0.1 (issue 3, "done when").

A hub and the four district nodes of ../shared/data/federation.json run as
separate ``simpul run`` processes (node.cluster), each with its own SQLite
database; one test runs two hub processes over one PostgreSQL database.
Everything goes through the public HTTP API and the signed federation
protocol; faults are real signals (SIGKILL, SIGTERM) sent to real processes.
"""
from __future__ import annotations

import http.client
import itertools
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from adapters import httpsig
from node.cluster import Cluster, free_ports
from node.cluster_client import ApiError

pytestmark = pytest.mark.acceptance
HUB = "nasional"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def samples(sample_dir) -> list[dict]:
    lines = (sample_dir / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def holder_of(sample_dir) -> dict[str, str]:
    """institution id -> the node that hosts it."""
    fed = json.loads((sample_dir / "federation.json").read_text(encoding="utf-8"))
    return {i["id"]: i["node"] for i in fed["institutions"]}


@pytest.fixture(scope="module")
def fed(sample_dir, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("federation"), sample_dir / "federation.json",
                      env={"SIMPUL_SYNC__LEASE_TTL_S": "2"})
    with cluster:
        cluster.init().start()
        yield cluster


class Ledger:
    """Every ticket the tests filed: ticket id -> (origin node, expected institution or None)."""

    def __init__(self):
        self.tickets: dict[str, tuple[str, str | None]] = {}
        self.by_ref: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, ref: str, ticket_id: str, origin: str, expected: str | None) -> None:
        with self.lock:
            self.tickets[ticket_id] = (origin, expected)
            self.by_ref[ref] = ticket_id


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


def file_all(cluster: Cluster, ledger: Ledger, items: list[dict], stop_on_error: bool = False) -> list[dict]:
    """File ``items`` at their filed_at nodes (one thread per node); return those that could not be filed."""
    failed: list[dict] = []
    errors: list[Exception] = []

    def worker(node_id: str, mine: list[dict]) -> None:
        client = cluster.client(node_id, "intake")
        for i, s in enumerate(mine):
            try:
                r = client.file(s, idempotency_key=s["ref"])
            except (OSError, http.client.HTTPException, ApiError) as exc:
                if not stop_on_error or (isinstance(exc, ApiError) and exc.status < 500):
                    errors.append(exc)
                failed.extend(mine[i:])
                return
            ledger.add(s["ref"], r["ticket_id"], node_id, s.get("expected_institution"))
    by_node: dict[str, list[dict]] = {}
    for s in items:
        by_node.setdefault(s["filed_at"], []).append(s)
    threads = [threading.Thread(target=worker, args=kv) for kv in by_node.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return failed


def burst(samples: list[dict], tag: str, n: int, at: str | None = None) -> list[dict]:
    """``n`` more complaints in the shape of the samples (same routing), with fresh refs."""
    by_origin: dict[str, list[dict]] = {}
    for s in samples:
        by_origin.setdefault(s["filed_at"], []).append(s)
    mixed = [s for group in itertools.zip_longest(*by_origin.values()) for s in group if s is not None]
    out = []
    for i in range(n):
        s = dict(mixed[i % len(mixed)], ref=f"{tag}-{i:03d}")
        s["title"] = f"{s['title']} ({tag} {i})"
        if at:
            s["filed_at"] = at
        out.append(s)
    return out


# ----------------------------------------------------------------------------- checks
def views(cluster: Cluster) -> dict[str, dict[str, dict]]:
    out = {n: {t["ticket_id"]: t for t in cluster.client(n).iter_tickets()} for n in cluster.node_ids}
    out["queue"] = {t["ticket_id"]: t for t in cluster.client(HUB).disposition()}
    return out


def misplaced(cluster: Cluster, ledger: Ledger, holder_of: dict[str, str]) -> list[str]:
    """Tickets not (yet) where they belong, on the hub, their holder node and their origin node."""
    v, problems = views(cluster), []
    for tid, (origin, want) in ledger.tickets.items():
        at_hub = v[HUB].get(tid)
        if at_hub is None:
            problems.append(f"{tid} (from {origin}) is not at the hub")
        elif want is None:
            if tid not in v["queue"]:
                problems.append(f"{tid} expected in the disposition queue, is {at_hub['status']}")
        else:
            for where in {HUB, holder_of[want], origin}:
                t = v[where].get(tid)
                if t is None or t["institution"] != want or t["status"] != at_hub["status"]:
                    problems.append(f"{tid} at {where}: want {want}/{at_hub['status']}, have "
                                    f"{t and (t['institution'], t['status'])}")
    return problems


def queues_drained(cluster: Cluster) -> bool:
    for n in cluster.node_ids:
        for p in cluster.client(n).sync_status()["peers"]:
            if p["queue_depth"] or p["dead_letters"]:
                return False
    return True


def event_problems(cluster: Cluster, holder_of: dict[str, str]) -> list[str]:
    """Every event exactly once on every node that should hold it: origin, hub and holder agree."""
    v, problems = views(cluster), []
    originated = {tid for n in cluster.node_ids if n != HUB for tid, t in v[n].items() if t["origin"] == n}
    if set(v[HUB]) != originated:
        problems.append(f"hub tickets {len(v[HUB])} != tickets originated at districts {len(originated)}")

    def fetch(n: str) -> dict[str, list[str]]:
        client = cluster.client(n)
        return {tid: [e["id"] for e in client.events(tid)] for tid in v[n]}
    with ThreadPoolExecutor(len(cluster.node_ids)) as pool:
        events = dict(zip(cluster.node_ids, pool.map(fetch, cluster.node_ids)))
    for n, per_ticket in events.items():
        for tid, ids in per_ticket.items():
            if len(ids) != len(set(ids)):
                problems.append(f"{tid} at {n}: an event listed twice")
        total = cluster.client(n).sync_status()["events"]
        if sum(map(len, per_ticket.values())) != total:
            problems.append(f"{n}: {total} events stored but its tickets show {sum(map(len, per_ticket.values()))}")
    for tid, t in v[HUB].items():
        hub_ids = set(events[HUB][tid])
        for where in {t["origin"], t["holder_node"]} - {None, HUB}:
            ids = set(events[where].get(tid, ()))
            if ids != hub_ids:
                problems.append(f"{tid} at {where}: missing {len(hub_ids - ids)}, extra {len(ids - hub_ids)}")
    return problems


def inbox_matches_log(cluster: Cluster, node_id: str) -> tuple[int, int]:
    """(events authored elsewhere, distinct events in the inbox) in a SQLite node's database."""
    db = cluster.proc(node_id).data_dir / "simpul.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        foreign = conn.execute("SELECT count(*) FROM events WHERE author != ?", (node_id,)).fetchone()[0]
        inbox = conn.execute("SELECT count(DISTINCT event_id) FROM inbox").fetchone()[0]
    return foreign, inbox


def assert_converged(cluster: Cluster, ledger: Ledger, holder_of: dict[str, str], timeout: float = 60) -> None:
    try:
        cluster.wait_until(lambda: queues_drained(cluster) and not misplaced(cluster, ledger, holder_of), timeout,
                           interval=0.5, what="every queue drained and every ticket where it belongs")
        cluster.wait_until(lambda: not event_problems(cluster, holder_of), 20, interval=1, what="event sets to agree")
    except TimeoutError as exc:
        queues = {n: [(p["peer"], p["queue_depth"], p["dead_letters"], p["backoff"]["last_error"][:80])
                      for p in cluster.client(n).sync_status()["peers"]] for n in cluster.node_ids}
        problems = misplaced(cluster, ledger, holder_of) or event_problems(cluster, holder_of)
        raise AssertionError(f"{exc}\nqueues: {queues}\nproblems ({len(problems)}): {problems[:15]}\n"
                             f"logs in {cluster.base_dir}") from None
    for n in cluster.node_ids:
        code, out = cluster.verify(n)
        assert code == 0, f"simpul verify on {n}: {out}"
        if cluster.database_urls.get(n) is None:
            foreign, inbox = inbox_matches_log(cluster, n)
            assert foreign == inbox, f"{n}: {foreign} events from peers but {inbox} inbox rows"


# ----------------------------------------------------------------------------- routing
@pytest.fixture(scope="module")
def routed(fed, ledger, samples, holder_of) -> Ledger:
    assert file_all(fed, ledger, samples) == []
    fed.wait_until(lambda: not misplaced(fed, ledger, holder_of), 40, interval=0.5, what="the samples to route")
    return ledger


def test_every_sample_complaint_reaches_its_institution(fed, routed, samples, holder_of):
    assert misplaced(fed, routed, holder_of) == []
    hub = fed.client(HUB)
    queue = {t["ticket_id"] for t in hub.disposition()}
    for s in samples:
        tid = routed.by_ref[s["ref"]]
        at_hub, at_origin = hub.ticket(tid), fed.client(s["filed_at"]).ticket(tid)
        want = s.get("expected_institution")
        assert at_hub["institution"] == at_origin["institution"] == want, s["ref"]
        assert at_hub["status"] == at_origin["status"] == ("dispositioned" if want else "received"), s["ref"]
        if want is None:
            assert tid in queue and at_hub["holder_node"] is None, s["ref"]
        elif holder_of[want] != HUB:
            at_holder = fed.client(holder_of[want]).ticket(tid)
            assert (at_holder["institution"], at_holder["holder_node"]) == (want, holder_of[want]), s["ref"]
    assert len(queue) == sum(1 for s in samples if not s.get("expected_institution"))


def test_s004_is_returned_as_bukan_wewenang_and_rerouted(fed, routed):
    tid = routed.by_ref["S004"]
    for where in (HUB, "kab-paser"):
        events = sorted(fed.client(where).events(tid), key=lambda e: (e["hlc"], e["author"], e["id"]))
        steps = [(e["type"], e["author"], e["payload"].get("institution")) for e in events
                 if e["type"] in ("created", "routed", "returned")]
        assert steps == [("created", "kab-paser", None), ("routed", HUB, "paser-pupr"),
                         ("returned", "kab-paser", "paser-pupr"), ("routed", HUB, "kemenpu-bpjn-kaltim")], where
        returned = next(e for e in events if e["type"] == "returned")
        assert "bukan wewenang" in returned["payload"]["reason"]
    final = fed.client("kab-paser").ticket(tid)
    assert (final["institution"], final["status"], final["returned_by"]) == (
        "kemenpu-bpjn-kaltim", "dispositioned", ["paser-pupr"])


def test_status_flows_back_to_the_origin(fed, routed, holder_of):
    tid = routed.by_ref["S024"]            # filed at kab-ppu, handled by kab-paser's civil registry
    op = fed.client("kab-paser", "operator")
    op.act(tid, "accept")
    op.act(tid, "follow_up", text="KTP sudah dicetak dan dapat diambil di kantor Disdukcapil.")
    op.act(tid, "close")
    fed.wait_until(lambda: fed.client("kab-ppu").ticket(tid)["status"] == "closed", 20, what="closed at origin")
    assert fed.client(HUB).ticket(tid)["status"] == "closed"
    assert fed.client("kab-ppu").ticket(tid)["followups"][0]["author"] == "kab-paser"


# ----------------------------------------------------------------------------- faults
def step(what: str, t0=time.monotonic()) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {what}", flush=True)


def test_faults_heal_by_themselves(fed, routed, samples, holder_of):
    ledger = routed
    step("faults: burst, then SIGKILL the hub")
    districts = [n for n in fed.node_ids if n != HUB]

    # 1. the hub is SIGKILLed in the middle of a burst, while districts push and it routes
    items = burst(samples, "kill-hub", 80)
    filer = threading.Thread(target=file_all, args=(fed, ledger, items))
    filer.start()
    fed.wait_until(lambda: sum(r.startswith("kill-hub") for r in ledger.by_ref) >= 20, 30, interval=0.05)
    fed.kill(HUB)
    filer.join()
    assert sum(r.startswith("kill-hub") for r in ledger.by_ref) == 80      # districts kept accepting
    fed.start(HUB)
    step("hub restarted; burst at kab-ppu, then SIGKILL it")

    # 2. a district is SIGKILLed while it pushes; the complaints it could not answer are retried
    items = burst(samples, "kill-node", 30, at="kab-ppu")
    result: dict = {}
    filer = threading.Thread(target=lambda: result.update(failed=file_all(fed, ledger, items, stop_on_error=True)))
    filer.start()
    fed.wait_until(lambda: sum(r.startswith("kill-node") for r in ledger.by_ref) >= 10, 30, interval=0.05)
    fed.kill("kab-ppu")
    filer.join()
    fed.start("kab-ppu")
    assert file_all(fed, ledger, result["failed"]) == []   # same Idempotency-Key: no double filing
    assert sum(r.startswith("kill-node") for r in ledger.by_ref) == 30

    # 3. the hub is away for a while: districts accept, queue and back off, then catch up alone
    step("kab-ppu restarted; stopping the hub")
    fed.stop(HUB)
    assert file_all(fed, ledger, burst(samples, "hub-away", 24)) == []

    def backing_off() -> bool:
        peers = [next(p for p in fed.client(n).sync_status()["peers"] if p["peer"] == HUB) for n in districts]
        return all(p["queue_depth"] > 0 and p["backoff"]["failures"] >= 2 and p["backoff"]["last_error"]
                   for p in peers)
    fed.wait_until(backing_off, 30, interval=0.3, what="districts to queue and back off")
    step("districts queue and back off; starting the hub")
    fed.start(HUB)
    assert_converged(fed, ledger, holder_of)
    step("converged")


# ----------------------------------------------------------------------------- security
def _send(url: str, headers: dict, body: bytes) -> tuple[int, str, str]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_replayed_altered_and_unenrolled_requests_are_refused(fed, routed, samples, holder_of):
    from node.config import load_settings
    from node.core import Node
    from schemas.complaints import ComplaintIn

    # A real push from kab-paser: file a complaint in its own database while its process is down.
    fed.wait_until(lambda: queues_drained(fed), 60, interval=0.5, what="a quiet federation")
    fed.stop("kab-paser")
    node = Node(load_settings(fed.proc("kab-paser").config))
    try:
        body = {k: v for k, v in samples[0].items() if k not in ("filed_at", "expected_institution", "note")}
        tid = node.complaints.file(ComplaintIn.model_validate({**body, "ref": "captured"})).state.ticket_id
        with node.storage.read() as tx:
            after = tx.peer(HUB)["acked"]
            batch = tx.outbox_batch(HUB, after, 500)
        key_id, key = node.keys.signing_key_id, node.keys.signing_key
    finally:
        node.close()
    assert tid in {e.ticket for _, e in batch}
    payload = json.dumps({"after": after, "items": [{"pos": p, "event": e.to_wire()} for p, e in batch]}).encode()
    url = fed.url(HUB) + "/federation/v1/events"
    hub = fed.client(HUB)

    def sign(body: bytes, kid: str = key_id, private=key) -> dict:
        return httpsig.sign_request("POST", url, {"Content-Type": "application/json"}, body, key_id=kid,
                                    private_key=private, now=time.time(), nonce=f"n-{time.monotonic_ns()}")

    before = hub.sync_status()["events"]
    captured = sign(payload)
    altered = payload.replace(b'"after":', b'"after": ')
    rogue = Ed25519PrivateKey.generate()
    attacks = {
        "altered body": (captured, altered),
        "altered body, digest recomputed": ({**sign(altered), "Signature": captured["Signature"],
                                             "Signature-Input": captured["Signature-Input"]}, altered),
        "unenrolled key": (sign(payload, "rogue-node#sig-1", rogue), payload),
        "kab-paser's key id, another key": (sign(payload, key_id, rogue), payload),
        "unsigned": ({"Content-Type": "application/json"}, payload),
    }
    for name, (headers, body) in attacks.items():
        status, ctype, text_ = _send(url, headers, body)
        assert status == 401 and ctype.startswith("application/problem+json"), (name, status, text_)
    assert hub.find(tid) is None and hub.sync_status()["events"] == before

    status, _, text_ = _send(url, captured, payload)           # the genuine request, once
    assert status == 200 and json.loads(text_)["accepted"] >= 1, text_
    after_genuine = hub.sync_status()["events"]
    status, ctype, text_ = _send(url, captured, payload)       # ...and its replay
    assert status == 401 and ctype.startswith("application/problem+json") and "replayed" in text_, text_
    assert hub.sync_status()["events"] == after_genuine
    log = fed.log_text(HUB)
    for reason in ("replayed request", "Content-Digest does not match", "unknown key id 'rogue-node#sig-1'",
                   "bad signature for key id", "is not signed"):
        assert reason in log, reason

    fed.start("kab-paser")
    routed.add("captured", tid, "kab-paser", samples[0]["expected_institution"])
    fed.wait_until(lambda: queues_drained(fed) and not misplaced(fed, routed, holder_of), 60, interval=0.5,
                   what="the captured complaint to route normally afterwards")


# ----------------------------------------------------------------------------- two hubs
def test_two_hub_processes_over_one_postgres_deliver_each_event_once(pg_database, tmp_path, sample_dir, samples,
                                                                       holder_of):
    pg = pg_database()
    # Periodic pull is off, and the districts start before the hubs and make one attempt per request:
    # their one pull at start-up fails at once, before any hub is up. (With the default three attempts
    # its retries met a hub that had come up meanwhile, in about one run of three, and that pull raced
    # the hub's pushes of the same events.) Pushes from the hub are then a district's only path, and any
    # duplicate at a district is a double send. The districts also learn each other's keys only when a
    # push needs them.
    cluster = Cluster(tmp_path / "fed", sample_dir / "federation.json", database_urls={HUB: pg},
                      env={"SIMPUL_SYNC__PULL_INTERVAL_S": "3600", "SIMPUL_SYNC__RETRY_ATTEMPTS": "1"})
    with cluster:
        cluster.init()
        districts = [n for n in cluster.node_ids if n != HUB]
        second_port = free_ports(1)[0]
        for n in districts[len(districts) // 2:]:
            cluster.proc(n).env["SIMPUL_HUB__URL"] = f"http://127.0.0.1:{second_port}"
        for n in districts:
            cluster.start(n, wait=False)
        for n in districts:
            cluster.wait_healthy(n)
        cluster.start(HUB, wait=False)
        second = cluster.start_extra_hub(port=second_port)
        cluster.wait_healthy(HUB)
        ledger = Ledger()
        assert file_all(cluster, ledger, samples) == []
        assert file_all(cluster, ledger, burst(samples, "two-hubs", 60)) == []
        assert_converged(cluster, ledger, holder_of)
        engine = create_engine(pg)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT dest, event_id FROM outbox")).all()
        engine.dispose()
        assert len(rows) == len(set(rows)), "an event was queued twice for one destination"
        for n in districts:
            sent = {e for d, e in rows if d == n}
            db = cluster.proc(n).data_dir / "simpul.db"
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                got = {r[0] for r in conn.execute("SELECT event_id FROM inbox WHERE origin = ?", (HUB,))}
            assert sent == got, f"{n}: {len(sent - got)} lost, {len(got - sent)} unexpected"
            assert "already held" not in cluster.log_text(n), f"{n} received an event twice"
        for name in (HUB, second):
            assert "routed to" in cluster.log_text(name), f"{name} routed nothing: did it receive pushes?"
            assert "Traceback" not in cluster.log_text(name), cluster.log_tail(name)
