"""Reporter confidentiality, end to end, with real node processes on loopback.

The whole sample (../shared/data/complaints.jsonl) is filed at its nodes and
synced through a real hub (node.cluster: one ``simpul run`` process per node).
Three of the four hub-hosted institutions get a passphrase-wrapped key before
start; bpjs-kesehatan gets its key only later, while everything runs, so the
"origin learns the key later" path is exercised for real.

How the hub's HTTP traffic is captured: every federation link goes through a
byte-for-byte TCP relay on 127.0.0.1 that records both directions. Districts
are pointed at the hub's relay (SIMPUL_HUB__URL) and the hub is given each
district's relay URL at enrolment, so every request the hub receives and every
response it sends, and every push it makes, passes a relay. The relay does not
parse HTTP, so it cannot hide anything; request signatures stay valid because
the Host header (the relay's address) is what both sides sign and check. The
test's own API calls to the hub (among them the legitimate openings by an
institution's operator, whose answer is the identity) do not go through the
relays. The capture is shown to work by finding ticket titles in it.

Leak search: each reporter's name, NIK, email and phone (as written, without
spaces, with 0 instead of +62, ...) in the raw bytes of a node's simpul.db and
simpul.db-wal, and in a logical dump of every row (so a value split across
SQLite pages is still found), in the hub's log (run at DEBUG) and in the
captured traffic. The search is shown to work by finding the identities in
their origin node's database.
"""
from __future__ import annotations

import json
import re
import socket
import sqlite3
import threading
from pathlib import Path

import pytest

from node.cluster import Cluster, simpul
from node.cluster_client import ApiError, NodeClient
from node.samples import sample_dir

pytestmark = pytest.mark.acceptance

SAMPLE = sample_dir()
HUB = "nasional"
PASSPHRASES = {"pln-uid-kaltimra": "PLN kaltimra: kunci rahasia 2026",
               "kemenpu-bpjn-kaltim": "BPJN kaltim passphrase, panjang",
               "bpjs-kesehatan": "BPJS kesehatan kata sandi operator"}
LATE_KEY = "bpjs-kesehatan"          # generated while the federation runs
TIMEOUT = 90


# -- a recording TCP relay ----------------------------------------------------------
class Relay:
    """Forwards 127.0.0.1:<port> to a target port, recording every byte both ways."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.chunks: list[bytearray] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket):
        # one growing buffer per connection and direction (so a value is never split between two
        # recorded pieces), registered at once so that long-lived keep-alive connections are seen too
        buf = bytearray()
        with self.lock:
            self.chunks.append(buf)
        try:
            while data := src.recv(65536):
                with self.lock:
                    buf += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def captured(self) -> bytes:
        with self.lock:
            return b"\n".join(bytes(c) for c in self.chunks)

    def close(self):
        self.closed = True
        self.server.close()


# -- searching for identities ---------------------------------------------------------
def identity_strings(reporter: dict) -> set[str]:
    out = {reporter["name"], reporter["nik"]}
    if reporter.get("email"):
        out.add(reporter["email"])
    phone = reporter["phone"]                                   # "+62 812 0000 0101"
    digits = re.sub(r"\D", "", phone)                           # "6281200000101"
    local = phone.split(" ", 1)[1]                              # "812 0000 0101"
    out |= {phone, digits, "+" + digits, "0" + digits[2:], digits[2:], local, "0" + local,
            "0" + local.replace(" ", "-"), phone.replace(" ", "-")}
    return out


def db_bytes(data_dir: Path) -> bytes:
    """Raw bytes of the database and its WAL, plus a dump of every row."""
    raw = b"".join((data_dir / name).read_bytes() for name in ("simpul.db", "simpul.db-wal")
                   if (data_dir / name).exists())
    conn = sqlite3.connect(f"file:{data_dir / 'simpul.db'}?mode=ro", uri=True, timeout=30)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    return raw + b"\n" + dump.encode("utf-8")


def leaks(haystack: bytes, reporters: dict[str, dict]) -> list[str]:
    return sorted(f"{ref}: {s!r}" for ref, rep in reporters.items() for s in identity_strings(rep)
                  if s.encode("utf-8") in haystack)


# -- the federation -------------------------------------------------------------------
class Federation:
    def __init__(self, cluster: Cluster, relays: dict[str, Relay], samples: dict, tickets: dict):
        self.cluster, self.relays, self.samples, self.tickets = cluster, relays, samples, tickets

    def client(self, node: str, role: str = "operator") -> NodeClient:
        return self.cluster.client(node, role)

    def tid(self, ref: str) -> str:
        return self.tickets[ref]

    def reporter(self, ref: str) -> dict:
        return self.samples[ref]["reporter"]

    def origin(self, ref: str) -> str:
        return self.samples[ref]["filed_at"]

    def data_dir(self, node: str) -> Path:
        return self.cluster.proc(node).data_dir

    def open(self, node: str, ref_or_tid: str, role: str = "operator", **body):
        tid = self.tickets.get(ref_or_tid, ref_or_tid)
        return self.client(node, role).post(f"/api/v1/complaints/{tid}/identity",
                                            {"reason": "menghubungi pelapor", **body})

    def wait(self, predicate, what: str, timeout: float = TIMEOUT):
        return Cluster.wait_until(predicate, timeout, 0.3, what)

    def wait_sealed(self, node: str, ref_or_tid: str) -> dict:
        tid = self.tickets.get(ref_or_tid, ref_or_tid)

        def sealed():
            t = self.client(node).find(tid)
            return t if t and t["identity"] == "sealed" and t["holder_node"] == node else None
        return self.wait(sealed, f"{ref_or_tid} sealed for {node}")


def _samples() -> dict[str, dict]:
    lines = (SAMPLE / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
    return {c["ref"]: c for c in map(json.loads, filter(str.strip, lines))}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    samples = _samples()
    base = tmp_path_factory.mktemp("confidentiality")
    cluster = Cluster(base, SAMPLE / "federation.json").init()
    relays: dict[str, Relay] = {}
    try:
        hub_cfg = str(cluster.proc(HUB).config)
        for inst, passphrase in PASSPHRASES.items():
            if inst != LATE_KEY:
                keygen(cluster, base, inst, passphrase)
        for name in cluster.node_ids:
            relays[name] = Relay(cluster.proc(name).port)
        for d in cluster.districts:      # the hub reaches each district through its relay
            nid = d["node_id"]
            code, out = simpul("nodes", "enroll", "--config", hub_cfg, "--keys", str(base / f"{nid}.keys.json"),
                               "--url", relays[nid].url)
            assert code == 0, out
        cluster.start(HUB, env={"SIMPUL_LOG_LEVEL": "DEBUG"})
        for d in cluster.districts:      # ... and each district reaches the hub through the hub's relay
            cluster.start(d["node_id"], env={"SIMPUL_HUB__URL": relays[HUB].url})
        tickets = {}
        for ref, sample in samples.items():
            tickets[ref] = cluster.client(sample["filed_at"], "intake").file(sample)["ticket_id"]
        f = Federation(cluster, relays, samples, tickets)
        _wait_settled(f)
        yield f
    finally:
        cluster.close()
        for relay in relays.values():
            relay.close()


def keygen(cluster: Cluster, base: Path, inst: str, passphrase: str) -> None:
    pass_file = base / f"{inst}.pass"
    pass_file.write_text(passphrase + "\n", encoding="utf-8")
    pass_file.chmod(0o600)
    code, out = simpul("institutions", "keygen", "--id", inst, "--config", str(cluster.proc(HUB).config),
                       "--passphrase-file", str(pass_file))
    assert code == 0, out


def _wait_settled(f: Federation) -> None:
    """Every ticket at its expected institution; every identity that should be sealed is, at its holder."""
    hub = f.client(HUB, "admin")

    def settled():
        by_id = {t["ticket_id"]: t for t in hub.tickets()}
        for ref, s in f.samples.items():
            t = by_id.get(f.tid(ref))
            if t is None or t["institution"] != s.get("expected_institution"):
                return False
            needs_box = (not s["anonim"] and t["holder_node"] not in (None, s["filed_at"])
                         and t["institution"] != LATE_KEY)
            if needs_box and t["identity"] != "sealed":
                return False
        return True
    f.wait(settled, "the whole sample to be routed and sealed", timeout=180)
    for ref, s in f.samples.items():
        t = f.client(HUB, "admin").ticket(f.tid(ref))
        if not s["anonim"] and t["holder_node"] not in (None, HUB, s["filed_at"]):
            f.wait_sealed(t["holder_node"], ref)


# -- the holder opens; the opening is audited -------------------------------------------
def test_holder_operator_opens_a_sealed_identity_and_the_opening_is_audited(fed):
    ref = "S028"                       # filed at kota-balikpapan, handled by paser-disdikbud on kab-paser
    assert (fed.origin(ref), fed.samples[ref]["expected_institution"]) == ("kota-balikpapan", "paser-disdikbud")
    view = fed.client("kab-paser").ticket(fed.tid(ref))
    assert view["identity"] == "sealed" and "Maria" not in json.dumps(view)
    opened = fed.open("kab-paser", ref, actor="Operator Disdikbud")
    assert opened["identity"] == fed.reporter(ref)
    assert opened["source"] == "node_keys" and opened["sealed_to"] == "kab-paser#seal-1"
    for role in ("admin", "intake"):                  # operators only
        with pytest.raises(ApiError) as err:
            fed.open("kab-paser", ref, role=role)
        assert err.value.status == 403
    audit = fed.client("kab-paser", "admin").get(f"/api/v1/complaints/{fed.tid(ref)}/audit")["items"]
    opened_rows = [a for a in audit if a["action"] == "identity_opened"]
    assert [(a["actor"], a["detail"]) for a in opened_rows] == [("operator:Operator Disdikbud", "menghubungi pelapor")]
    assert opened_rows[0]["at"] > 0
    origin_audit = fed.client("kota-balikpapan", "admin").get(f"/api/v1/complaints/{fed.tid(ref)}/audit")["items"]
    assert any(a["action"] == "identity_sealed" and "kab-paser#seal-1" in a["detail"] for a in origin_audit)


def test_anonymous_identity_is_refused_everywhere_and_questions_reach_the_origin(fed):
    anon = [r for r, s in fed.samples.items() if s["anonim"]]
    assert anon
    for ref in anon:
        for node in {fed.origin(ref), HUB}:
            with pytest.raises(ApiError) as err:
                fed.open(node, ref)
            assert err.value.status == 403
            assert f"contact the reporter through {fed.origin(ref)}" in err.value.body["detail"]
    # a follow-up by the holder reaches the origin, which lists it for the reporter
    ref = "S028"
    fed.client("kab-paser").act(fed.tid(ref), "follow_up", text="Mohon kirimkan foto kuitansi pungutan")

    def delivered():
        msgs = fed.client("kota-balikpapan", "intake").get(f"/api/v1/complaints/{fed.tid(ref)}/messages")
        return [m["text"] for m in msgs["messages"]]
    assert fed.wait(delivered, "the follow-up at the origin") == ["Mohon kirimkan foto kuitansi pungutan"]


# -- hub-hosted institutions ----------------------------------------------------------
def test_hub_hosted_institution_opens_only_with_its_operators_passphrase(fed):
    ref = "S002"                       # kab-paser -> pln-uid-kaltimra, hosted on the hub
    view = fed.client(HUB).ticket(fed.tid(ref))
    assert (view["holder_node"], view["institution"], view["identity"]) == (HUB, "pln-uid-kaltimra", "sealed")
    with pytest.raises(ApiError) as err:
        fed.open(HUB, ref)                                   # the hub's operator alone cannot
    assert err.value.status == 422 and "passphrase" in err.value.body["detail"]
    with pytest.raises(ApiError) as err:
        fed.open(HUB, ref, passphrase="a guess by the hub operator")
    assert err.value.status == 422 and err.value.body["type"].endswith("/sealing")
    with pytest.raises(ApiError) as err:
        fed.open(HUB, ref, role="admin", passphrase=PASSPHRASES["pln-uid-kaltimra"])
    assert err.value.status == 403
    opened = fed.open(HUB, ref, actor="CS PLN", passphrase=PASSPHRASES["pln-uid-kaltimra"])
    assert opened["identity"] == fed.reporter(ref) and opened["sealed_to"] == "pln-uid-kaltimra#seal-1"
    actions = [a["action"] for a in fed.client(HUB, "admin").get(f"/api/v1/complaints/{fed.tid(ref)}/audit")["items"]]
    # every attempt is audited: the one without a passphrase, the wrong guess, the right one
    assert actions.count("identity_open_failed") == 2 and actions.count("identity_opened") == 1


def test_identity_stays_pending_until_the_origin_learns_the_institutions_key(fed):
    ref = "S018"                       # kab-paser -> bpjs-kesehatan, which has no key yet
    view = fed.client(HUB).ticket(fed.tid(ref))
    assert (view["institution"], view["identity"]) == (LATE_KEY, "pending")
    with pytest.raises(ApiError) as err:
        fed.open(HUB, ref, passphrase=PASSPHRASES[LATE_KEY])
    assert err.value.status == 409 and "pending" in err.value.body["detail"]
    keygen(fed.cluster, fed.data_dir(HUB).parent, LATE_KEY, PASSPHRASES[LATE_KEY])   # while everything runs
    fed.wait_sealed(HUB, ref)
    opened = fed.open(HUB, ref, passphrase=PASSPHRASES[LATE_KEY])
    assert opened["identity"] == fed.reporter(ref) and opened["sealed_to"] == f"{LATE_KEY}#seal-1"


def test_reroute_to_a_hub_hosted_institution_is_resealed_for_it(fed):
    ref = "S004"                       # chose paser-pupr (kab-paser, its origin), returned, rerouted to BPJN
    events = [e["type"] for e in fed.client(HUB, "admin").events(fed.tid(ref))]
    assert events.count("routed") == 2 and "returned" in events
    opened = fed.open(HUB, ref, passphrase=PASSPHRASES["kemenpu-bpjn-kaltim"])
    assert opened["identity"] == fed.reporter(ref) and opened["sealed_to"] == "kemenpu-bpjn-kaltim#seal-1"


# -- reroute between districts ----------------------------------------------------------
def test_after_a_reroute_the_new_holder_can_open_and_the_old_one_cannot(fed):
    ref = "S024"                       # filed at kab-ppu, handled first by paser-disdukcapil on kab-paser
    tid = fed.tid(ref)
    assert fed.open("kab-paser", ref)["identity"] == fed.reporter(ref)
    fed.client("kab-paser").act(tid, "return", reason="bukan wewenang: warga bekerja di Balikpapan")
    hub = fed.client(HUB, "admin")
    fed.wait(lambda: any(t["ticket_id"] == tid for t in hub.disposition()), "S024 in the disposition queue")
    hub.act(tid, "route", institution="bpp-disdukcapil", reason="manual")
    fed.wait_sealed("kota-balikpapan", ref)
    opened = fed.open("kota-balikpapan", ref)
    assert opened["identity"] == fed.reporter(ref) and opened["sealed_to"] == "kota-balikpapan#seal-1"
    with pytest.raises(ApiError) as err:
        fed.open("kab-paser", ref)
    assert err.value.status == 403 and "does not hold the ticket" in err.value.body["detail"]
    assert fed.client("kab-paser").ticket(tid)["identity"] != "sealed"


# -- tampering ----------------------------------------------------------------------------
def test_a_tampered_box_is_rejected_clearly_and_the_ticket_still_works(fed):
    ref = "S033"                       # filed at prov-kaltim, handled by paser-dlh on kab-paser
    tid = fed.tid(ref)
    db = fed.data_dir("kab-paser") / "simpul.db"
    conn = sqlite3.connect(db, timeout=30)
    try:
        state = json.loads(conn.execute("SELECT state_json FROM tickets WHERE ticket_id=?", (tid,)).fetchone()[0])
        ct = state["sealed_identity"]["box"]["ciphertext"]
        state["sealed_identity"]["box"]["ciphertext"] = ct[:10] + ("A" if ct[10] != "A" else "B") + ct[11:]
        with conn:
            conn.execute("UPDATE tickets SET state_json=? WHERE ticket_id=?", (json.dumps(state), tid))
    finally:
        conn.close()
    with pytest.raises(ApiError) as err:
        fed.open("kab-paser", ref)
    assert err.value.status == 422 and err.value.body["type"].endswith("/sealing")
    assert "tampered or wrong key" in err.value.body["detail"]
    operator = fed.client("kab-paser")
    assert operator.ticket(tid)["status"] == "dispositioned"                    # the ticket still reads
    after = operator.act(tid, "accept")                                          # ... and still acts
    assert after["status"] == "in_progress"
    # the projection is rebuilt from the signed events, which were never touched
    assert fed.open("kab-paser", ref)["identity"] == fed.reporter(ref)
    actions = [a["action"] for a in fed.client("kab-paser", "admin").get(f"/api/v1/complaints/{tid}/audit")["items"]]
    assert actions == ["identity_open_failed", "identity_opened"]


# -- key rotation -------------------------------------------------------------------------
def test_after_sealing_key_rotation_old_boxes_still_open_and_new_ones_use_the_new_key(fed):
    c = fed.cluster
    cfg = str(c.proc("kab-paser").config)
    c.stop("kab-paser")
    code, out = simpul("keys", "rotate", "--kind", "sealing", "--config", cfg)
    assert code == 0 and "kab-paser#seal-2" in out, out
    c.start("kab-paser")
    code, keys_json = simpul("keys", "show", "--json", "--config", cfg)
    keys = json.loads(keys_json)
    fed.client(HUB, "admin").post("/api/v1/admin/nodes", {"node_id": "kab-paser", "role": "district",
                                                          "url": fed.relays["kab-paser"].url, "keys": keys["keys"]})
    assert fed.open("kab-paser", "S028")["sealed_to"] == "kab-paser#seal-1"    # sealed before the rotation

    def ppu_knows_new_key():
        snap = fed.client("kab-ppu", "admin").get("/api/v1/admin/nodes")
        return any(k["key_id"] == "kab-paser#seal-2" for k in snap["keys"])
    fed.wait(ppu_knows_new_key, "kab-ppu's directory to learn kab-paser#seal-2")
    new = fed.client("kab-ppu", "intake").file({**fed.samples["S024"], "ref": "S024-again"})["ticket_id"]
    fed.wait_sealed("kab-paser", new)
    opened = fed.open("kab-paser", new)
    assert opened["identity"] == fed.reporter("S024") and opened["sealed_to"] == "kab-paser#seal-2"


# -- nothing leaks ----------------------------------------------------------------------
# These run last, so that every opening, reroute and rotation above is covered too.
def test_no_reporter_identity_reaches_the_hub_database_log_or_traffic(fed):
    reporters = {ref: s["reporter"] for ref, s in fed.samples.items()}
    origin_db = db_bytes(fed.data_dir("kab-paser"))
    assert leaks(origin_db, {"S001": reporters["S001"]})                 # the search finds what is there
    assert not leaks(db_bytes(fed.data_dir(HUB)), reporters), "identity in the hub's database"
    log_text = fed.cluster.log_text(HUB)
    assert "routed to" in log_text                                       # the log is the hub's working log
    assert not leaks(log_text.encode("utf-8"), reporters), "identity in the hub's log"
    captured = {node: relay.captured() for node, relay in fed.relays.items()}
    assert all(b"/federation/v1/events" in data for data in captured.values()), "a relay saw no sync"
    traffic = b"\n".join(captured.values())
    assert fed.samples["S001"]["title"].encode() in traffic               # the capture sees the sync
    assert b"identity_sealed" in traffic and b"ciphertext" in traffic
    assert not leaks(traffic, reporters), "identity in the hub's HTTP traffic"


def test_an_identity_is_in_clear_only_in_its_origins_database(fed):
    dbs = {n: db_bytes(fed.data_dir(n)) for n in fed.cluster.node_ids}
    for ref, s in fed.samples.items():
        assert leaks(dbs[s["filed_at"]], {ref: s["reporter"]}), f"{ref} missing at its origin"
    anonymous = {ref: s["reporter"] for ref, s in fed.samples.items() if s["anonim"]}
    assert len(anonymous) >= 5
    for node, data in dbs.items():
        elsewhere = {ref: rep for ref, rep in anonymous.items() if fed.origin(ref) != node}
        assert not leaks(data, elsewhere), f"anonymous identity in {node}'s database"
    for node, data in dbs.items():
        others = {ref: s["reporter"] for ref, s in fed.samples.items() if s["filed_at"] != node}
        assert not leaks(data, others), f"another origin's identity in clear in {node}'s database"


def test_rahasia_reports_never_appear_in_the_public_listing(fed):
    rahasia = {fed.samples[r]["title"] for r, s in fed.samples.items() if s["rahasia"]}
    assert rahasia
    for node in fed.cluster.node_ids:
        items = NodeClient(fed.cluster.url(node), "").get("/api/v1/public/complaints?limit=200")["items"]
        titles = {i["title"] for i in items}
        assert titles and not titles & rahasia
        assert not leaks(json.dumps(items, ensure_ascii=False).encode(),
                         {r: s["reporter"] for r, s in fed.samples.items()})
