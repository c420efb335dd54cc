"""The node's HTTP API against a real database (SQLite file; PostgreSQL when available).

Real aiohttp application (build_app) through pytest-aiohttp's test client, a node
made by the real ``simpul init`` code path, and the sample data in ../shared/data.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.http.app import build_app

PUBLIC_FIELDS = ("title", "body", "category", "topic", "region", "kecamatan", "type", "anonim", "rahasia",
                 "channel", "incident_date", "chosen_institution")
PROBLEM_BASE = "https://simpul.example/problems/"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(params=["sqlite", "postgresql"])
def any_node(request, tmp_path, make_node, sample_dir):
    """A district node on each backend, with the sample federation loaded."""
    url = request.getfixturevalue("pg_database")() if request.param == "postgresql" else None
    return make_node(tmp_path, database_url=url, federation=sample_dir / "federation.json")


@pytest.fixture
def node(tmp_path, make_node, sample_dir):
    return make_node(tmp_path, federation=sample_dir / "federation.json")


@pytest.fixture
def tokens(node):
    return node.settings.tokens


@pytest.fixture
async def client(aiohttp_client, node):
    return await aiohttp_client(build_app(node))


@pytest.fixture
def complaint(sample_complaints):
    """S001: a school-fee complaint for paser-disdikbud, hosted on kab-paser."""
    return next(c for c in sample_complaints if c["ref"] == "S001")


async def file(client, token, body, **headers):
    resp = await client.post("/api/v1/complaints", json=body, headers={**auth(token), **headers})
    return resp, await resp.json()


def counts(node) -> dict:
    with node.storage.read() as tx:
        return {"events": tx.count_events(), "tickets": len(tx.ticket_ids()),
                "outbox": tx.outbox_depth(node.hub_id, 0)}


async def assert_problem(resp, status: int, *mentions: str) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    data = await resp.json()
    assert data["status"] == status
    assert data["type"].startswith(PROBLEM_BASE) and len(data["type"]) > len(PROBLEM_BASE)
    assert isinstance(data["title"], str) and data["title"]
    assert isinstance(data["detail"], str) and data["detail"]
    for word in mentions:
        assert word.lower() in data["detail"].lower(), (word, data["detail"])
    return data


def identity_strings(reporter: dict) -> list[str]:
    out = [v for v in reporter.values() if isinstance(v, str) and len(v) >= 5]
    if reporter.get("phone"):
        digits = "".join(ch for ch in reporter["phone"] if ch.isdigit())
        out += [digits, "0" + digits[2:] if digits.startswith("62") else digits]
    return out


def assert_no_identity(text: str, reporter: dict) -> None:
    low = text.lower()
    for value in identity_strings(reporter):
        assert value.lower() not in low, f"reporter identity {value!r} leaked"


# ---------------------------------------------------------- the 40 samples
async def test_all_sample_complaints_filed_and_read_back(aiohttp_client, any_node, sample_complaints):
    client = await aiohttp_client(build_app(any_node))
    tokens = any_node.settings.tokens
    assert len(sample_complaints) == 40
    filed = {}
    for c in sample_complaints:
        resp, data = await file(client, tokens.intake, c)
        assert resp.status == 201, data
        assert len(data["ticket_id"]) >= 16 and data["tracking_id"].startswith("KAB-PASER-")
        assert data["status"] == "received" and data["redacted"] == []
        filed[c["ref"]] = data
    assert len({d["ticket_id"] for d in filed.values()}) == 40
    assert len({d["tracking_id"] for d in filed.values()}) == 40

    for c in sample_complaints:
        ids = filed[c["ref"]]
        resp = await client.get(f"/api/v1/complaints/{ids['ticket_id']}", headers=auth(tokens.intake))
        assert resp.status == 200
        text = await resp.text()
        got = json.loads(text)
        for field in PUBLIC_FIELDS:
            assert got[field] == c.get(field), (c["ref"], field)
        assert got["report_type"] == c["type"]
        assert got["ticket_id"] == ids["ticket_id"] and got["tracking_id"] == ids["tracking_id"]
        assert got["status"] == "received" and got["origin"] == "kab-paser"
        assert "reporter" not in got
        assert_no_identity(text, c["reporter"])

        resp = await client.get(f"/api/v1/complaints/{ids['ticket_id']}/events", headers=auth(tokens.operator))
        assert resp.status == 200
        text = await resp.text()
        events = json.loads(text)["events"]
        assert [e["type"] for e in events] == ["created"]
        assert events[0]["payload"]["title"] == c["title"] and events[0]["payload"]["body"] == c["body"]
        assert_no_identity(text, c["reporter"])

    resp = await client.get("/api/v1/complaints?limit=15&offset=30", headers=auth(tokens.operator))
    page = await resp.json()
    assert resp.status == 200 and page["total"] == 40 and len(page["items"]) == 10
    resp = await client.get("/api/v1/complaints?category=pendidikan&limit=500", headers=auth(tokens.operator))
    page = await resp.json()
    expected = {filed[c["ref"]]["ticket_id"] for c in sample_complaints if c["category"] == "pendidikan"}
    assert {i["ticket_id"] for i in page["items"]} == expected and page["total"] == len(expected)
    with any_node.storage.read() as tx:
        assert tx.count_events() == 40 and len(tx.ticket_ids()) == 40
        private = tx.get_private(filed["S001"]["ticket_id"])
    s001 = next(c for c in sample_complaints if c["ref"] == "S001")
    assert private["identity"] == s001["reporter"]  # the identity stays here, on the origin, only


async def test_identity_in_body_is_redacted(client, tokens, complaint, node):
    c = dict(complaint, body=complaint["body"] + " Hubungi saya, Sri Wahyuningsih, di 0812-0000-0101 "
                                                 "atau sri.w@example.id, NIK 6401044511820001.")
    resp, data = await file(client, tokens.intake, c)
    assert resp.status == 201 and set(data["redacted"]) >= {"reporter_name", "reporter_phone", "email"}
    for path in (f"/api/v1/complaints/{data['ticket_id']}", f"/api/v1/complaints/{data['ticket_id']}/events"):
        resp = await client.get(path, headers=auth(tokens.operator))
        text = await resp.text()
        assert_no_identity(text, c["reporter"])
        assert "0812-0000-0101" not in text and "[nomor telepon disamarkan]" in text
    with node.storage.read() as tx:
        assert tx.get_private(data["ticket_id"])["original_body"] == c["body"]


async def test_kecamatan_and_the_reporters_address_are_masked_too(client, tokens, complaint):
    """Before, ``kecamatan`` went out as typed, and the reporter's address in the body was never masked."""
    reporter = dict(complaint["reporter"], address="Jl. Cempaka No. 12 RT 04, Tanah Grogot")
    c = dict(complaint, reporter=reporter, kecamatan="Tanah Grogot, WA 0813\u20134444\u20135555",
             body=complaint["body"] + " Rumah saya di Jl. Cempaka No. 12 RT 04.")
    resp, data = await file(client, tokens.intake, c)
    assert resp.status == 201 and set(data["redacted"]) >= {"phone", "reporter_address"}
    resp = await client.get(f"/api/v1/complaints/{data['ticket_id']}", headers=auth(tokens.operator))
    ticket = await resp.json()
    assert ticket["kecamatan"] == "Tanah Grogot, WA [nomor telepon disamarkan]", ticket["kecamatan"]
    assert "Cempaka" not in ticket["body"] and "[alamat disamarkan]" in ticket["body"]


# ------------------------------------------------------------ idempotency
async def test_idempotency_key_retry_returns_same_ticket(client, tokens, complaint, node, db_snapshot):
    resp1, d1 = await file(client, tokens.intake, complaint, **{"Idempotency-Key": "sms-gw-0001"})
    resp2, d2 = await file(client, tokens.intake, complaint, **{"Idempotency-Key": "sms-gw-0001"})
    assert (resp1.status, resp2.status) == (201, 200)
    assert d1["ticket_id"] == d2["ticket_id"] and d1["tracking_id"] == d2["tracking_id"]
    assert counts(node)["tickets"] == 1 and counts(node)["events"] == 1

    before = db_snapshot(node.storage)
    changed = dict(complaint, title="Pungutan buku LKS di SMP negeri")
    resp3 = await client.post("/api/v1/complaints", json=changed,
                              headers={**auth(tokens.intake), "Idempotency-Key": "sms-gw-0001"})
    await assert_problem(resp3, 409, "Idempotency-Key")
    assert db_snapshot(node.storage) == before

    resp4, d4 = await file(client, tokens.intake, complaint, **{"Idempotency-Key": "sms-gw-0002"})
    assert resp4.status == 201 and d4["ticket_id"] != d1["ticket_id"]
    assert counts(node)["tickets"] == 2


async def test_idempotency_key_stored_with_the_old_digest_still_matches(client, tokens, complaint, node, db_snapshot):
    """Keys stored before request_hash moved to orjson hold the standard library's digest: a retry of the
    same complaint still gets its ticket back, and a different complaint is still refused."""
    import hashlib
    import json
    from schemas.complaints import ComplaintIn
    resp1, d1 = await file(client, tokens.intake, complaint, **{"Idempotency-Key": "old-gw-0001"})
    assert resp1.status == 201
    legacy = hashlib.sha256(json.dumps(ComplaintIn.model_validate(complaint).model_dump(),
                                       sort_keys=True).encode()).hexdigest()
    with node.storage.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE idempotency SET request_hash = ? WHERE key = ?", (legacy, "intake:old-gw-0001"))
    resp2, d2 = await file(client, tokens.intake, complaint, **{"Idempotency-Key": "old-gw-0001"})
    assert resp2.status == 200 and d2["ticket_id"] == d1["ticket_id"]
    before = db_snapshot(node.storage)
    resp3 = await client.post("/api/v1/complaints", json=dict(complaint, title="Pungutan buku LKS di SMP negeri"),
                              headers={**auth(tokens.intake), "Idempotency-Key": "old-gw-0001"})
    await assert_problem(resp3, 409, "Idempotency-Key")
    assert db_snapshot(node.storage) == before


# -------------------------------------------------------------- bad input
def _without(key):
    def f(c):
        c = dict(c)
        del c[key]
        return c
    return f


def _with(**over):
    return lambda c: {**c, **over}


BAD_INPUT = [
    # id, body transform (None: raw bytes given), raw bytes, content type, status, words the detail mentions
    ("invalid-json", None, b'{"type": "pengaduan", "title": ', "application/json", 400, ["JSON"]),
    ("not-utf8", None, b'{"title": "\xff\xfe"}', "application/json", 400, ["JSON"]),
    ("body-is-a-list", None, b'[{"type": "pengaduan"}]', "application/json", 422, ["object"]),
    ("body-is-a-string", None, b'"pengaduan"', "application/json", 422, ["object"]),
    ("missing-title", _without("title"), None, "application/json", 422, ["title"]),
    ("missing-reporter", _without("reporter"), None, "application/json", 422, ["reporter"]),
    ("unknown-field", _with(priority="tinggi"), None, "application/json", 422, ["priority"]),
    ("unknown-reporter-field", _with(reporter={"name": "Sri", "ktp": "1"}), None, "application/json", 422,
     ["reporter.ktp"]),
    ("unknown-category", _with(category="astrologi"), None, "application/json", 422, ["category", "astrologi"]),
    ("unknown-type", _with(type="keluhan"), None, "application/json", 422, ["type"]),
    ("anonim-not-bool", _with(anonim="yes"), None, "application/json", 422, ["anonim"]),
    ("rahasia-int", _with(rahasia=1), None, "application/json", 422, ["rahasia"]),
    ("title-not-string", _with(title=["Pungutan"]), None, "application/json", 422, ["title"]),
    ("bad-region", _with(region="64-01"), None, "application/json", 422, ["region"]),
    ("bad-incident-date", _with(incident_date="2026-02-30"), None, "application/json", 422, ["incident_date"]),
    ("bad-nik", _with(reporter={"name": "Sri", "nik": "123"}), None, "application/json", 422, ["nik"]),
    ("body-too-short", _with(body="tolong"), None, "application/json", 422, ["body"]),
    ("bad-channel", _with(channel="telegram"), None, "application/json", 422, ["channel"]),
    # PostgreSQL cannot store NUL in text: refused by validation, not by the database
    ("nul-in-body", _with(body="Jalan rusak\u0000 sekali di desa"), None, "application/json", 422,
     ["body", "control characters"]),
    ("escape-in-reporter-name", _with(reporter={"name": "Sri\u001b[2J"}), None, "application/json", 422,
     ["reporter.name", "control characters"]),
    ("anonymous-without-reporter", _with(anonim=True, reporter=None), None, "application/json", 422,
     ["reporter is required, anonymous or not"]),
    ("oversized", "oversized", None, "application/json", 413, ["bytes"]),
    ("text-plain", "as-text", None, "text/plain", 415, ["Content-Type"]),
    ("form-encoded", "as-form", None, "application/x-www-form-urlencoded", 415, ["Content-Type"]),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_is_a_problem_and_changes_nothing(client, tokens, complaint, node, db_snapshot, case):
    _, transform, raw, ctype, status, mentions = case
    await file(client, tokens.intake, complaint)  # a non-empty database to compare
    if callable(transform):
        raw = json.dumps(transform(complaint)).encode()
    elif transform == "oversized":
        raw = json.dumps(dict(complaint, body="x" * (node.settings.max_body_bytes + 10))).encode()
    elif transform in ("as-text", "as-form"):
        raw = json.dumps(complaint).encode()
    before_counts, before = counts(node), db_snapshot(node.storage)
    resp = await client.post("/api/v1/complaints", data=raw,
                             headers={**auth(tokens.intake), "Content-Type": ctype, "Idempotency-Key": "k-bad"})
    await assert_problem(resp, status, *mentions)
    assert counts(node) == before_counts
    assert db_snapshot(node.storage) == before


async def test_oversized_chunked_body_is_refused(client, tokens, complaint, node, db_snapshot):
    """No Content-Length: the limit still holds once the body is read."""
    body = json.dumps(dict(complaint, body="x" * (node.settings.max_body_bytes + 10))).encode()

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]
    before = db_snapshot(node.storage)
    resp = await client.post("/api/v1/complaints", data=chunks(),
                             headers={**auth(tokens.intake), "Content-Type": "application/json"})
    await assert_problem(resp, 413, "bytes")
    assert db_snapshot(node.storage) == before


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_content_encoding_is_a_problem(client, tokens, complaint, node, db_snapshot,
                                                                    caplog, encoding):
    """Before, aiohttp's decoding error escaped ``read_json``: a 500, and a traceback in the node's log."""
    before = db_snapshot(node.storage)
    resp = await client.post("/api/v1/complaints", data=json.dumps(complaint).encode(),
                             headers={**auth(tokens.intake), "Content-Type": "application/json",
                                      "Content-Encoding": encoding})
    await assert_problem(resp, 400, "body cannot be read", f"content-encoding: {encoding}")
    assert db_snapshot(node.storage) == before
    assert not [r for r in caplog.records if r.name == "adapters.http.problems"]


BAD_ACTIONS = [
    ("unknown-action", {"action": "delete"}, 422, ["action"]),
    ("follow-up-without-text", {"action": "follow_up"}, 422, ["text"]),
    ("unknown-field", {"action": "verify", "urgent": True}, 422, ["urgent"]),
    ("route-unknown-institution", {"action": "route", "institution": "paser-astrologi"}, 422, ["institution"]),
    ("route-to-other-node", {"action": "route", "institution": "ppu-disdik"}, 403, ["institution"]),
    ("reopen-received", {"action": "reopen"}, 422, ["reopened", "received"]),
    ("close-unrouted", {"action": "close"}, 403, ["holder"]),
    ("nul-in-text", {"action": "reply", "text": "ya\u0000"}, 422, ["text", "control characters"]),
    ("actor-on-two-lines", {"action": "verify", "actor": "Budi\n2026-11-28 WARNING forged"}, 422,
     ["actor", "one line"]),
]


@pytest.mark.parametrize("case", BAD_ACTIONS, ids=[c[0] for c in BAD_ACTIONS])
async def test_bad_action_is_a_problem_and_changes_nothing(client, tokens, complaint, node, db_snapshot, case):
    _, action, status, mentions = case
    _, filed = await file(client, tokens.intake, complaint)
    before = db_snapshot(node.storage)
    resp = await client.post(f"/api/v1/complaints/{filed['ticket_id']}/events", json=action,
                             headers=auth(tokens.operator))
    await assert_problem(resp, status, *mentions)
    assert db_snapshot(node.storage) == before


async def test_lifecycle_forbids_illegal_status_changes(client, tokens, complaint, node, db_snapshot):
    _, filed = await file(client, tokens.intake, complaint)
    url = f"/api/v1/complaints/{filed['ticket_id']}/events"
    resp = await client.post(url, json={"action": "route", "institution": "paser-disdikbud"},
                             headers=auth(tokens.operator))
    assert resp.status == 201
    # now held by this node, in 'dispositioned': closing, reopening, verifying are all out of order
    for action, words in [({"action": "close"}, ["closed", "dispositioned"]),
                          ({"action": "reopen"}, ["reopened", "dispositioned"]),
                          ({"action": "verify"}, ["verified", "dispositioned"])]:
        before = db_snapshot(node.storage)
        resp = await client.post(url, json=action, headers=auth(tokens.operator))
        data = await assert_problem(resp, 422, *words)
        assert data["type"] == PROBLEM_BASE + "illegal-transition"
        assert db_snapshot(node.storage) == before
    resp = await client.get(url, headers=auth(tokens.operator))
    assert [e["type"] for e in (await resp.json())["events"]] == ["created", "routed"]


async def test_unknown_ticket_is_404(client, tokens):
    resp = await client.get("/api/v1/complaints/" + "0" * 32, headers=auth(tokens.operator))
    await assert_problem(resp, 404, "not found")
    resp = await client.get("/api/v1/complaints/" + "0" * 32 + "/events", headers=auth(tokens.operator))
    await assert_problem(resp, 404, "not found")
    resp = await client.post("/api/v1/complaints/" + "0" * 32 + "/events", json={"action": "verify"},
                             headers=auth(tokens.operator))
    await assert_problem(resp, 404, "not found")


async def test_bad_list_parameters(client, tokens):
    resp = await client.get("/api/v1/complaints?limit=0", headers=auth(tokens.operator))
    await assert_problem(resp, 422, "limit")
    resp = await client.get("/api/v1/complaints?offset=abc", headers=auth(tokens.operator))
    await assert_problem(resp, 422, "offset")
    resp = await client.get("/api/v1/complaints?colour=red", headers=auth(tokens.operator))
    await assert_problem(resp, 422, "colour")
    # "²".isdigit() is true but int() refuses it; an unbounded number overflows the database
    for query in ("limit=%C2%B2", "offset=%C2%B2", "offset=99999999999999999999",
                  "limit=1_0", "limit=%205", "limit=%D9%A3"):   # int() takes these three
        resp = await client.get(f"/api/v1/public/complaints?{query}")
        await assert_problem(resp, 422, query.split("=")[0])
    for query in ("all=yes", "all=True", "all=", "after=1_0"):   # (all=yes was taken for false)
        resp = await client.get(f"/api/v1/dead-letters?{query}", headers=auth(tokens.admin))
        await assert_problem(resp, 422, query.split("=")[0])
    for query in ("awaiting_disposition=maybe", "awaiting_disposition=", "awaiting_disposition=yes"):
        resp = await client.get(f"/api/v1/complaints?{query}", headers=auth(tokens.operator))   # (taken as false)
        await assert_problem(resp, 422, "awaiting_disposition")
    for path in ("/api/v1/conflicts", "/api/v1/dead-letters", "/api/v1/sync/status", "/api/v1/disposition",
                 "/api/v1/admin/nodes"):   # (the parameter was ignored: a misspelt filter listed everything)
        resp = await client.get(f"{path}?statuss=open", headers=auth(tokens.admin))
        await assert_problem(resp, 422, "unknown query parameter", "statuss")


@pytest.mark.parametrize("key", ["\xff\xfe".encode("latin-1").decode("latin-1"), "a\tb", "x" * 201])
async def test_an_idempotency_key_must_be_printable_ascii(client, tokens, complaint, node, db_snapshot, key):
    before = db_snapshot(node.storage)
    resp = await client.post("/api/v1/complaints", json=complaint,
                             headers={**auth(tokens.intake), "Idempotency-Key": key})
    await assert_problem(resp, 400, "Idempotency-Key")
    assert db_snapshot(node.storage) == before


async def test_free_text_of_actions_is_masked_before_it_is_signed(client, tokens, complaint, node):
    """A reporter's reply, a follow-up or a reason can repeat the identity: the event, which syncs, carries
    the masked text (with the reporter's own NIK and phone known at the origin)."""
    body = {**complaint, "anonim": True, "reporter": {"name": "Sri Wahyuni", "nik": "6401000000000005",
                                                       "phone": "081200000105"}}
    _, filed = await file(client, tokens.intake, body)
    url = f"/api/v1/complaints/{filed['ticket_id']}/events"
    resp = await client.post(url, json={"action": "reply", "text": "Ini saya lagi, nomor saya 0812-0000-0105 "
                                        "dan NIK 6401 0000 0000 0005, hubungi juga 081399887766"},
                             headers=auth(tokens.operator))
    assert resp.status == 201
    resp = await client.post(url, json={"action": "route", "institution": "paser-disdikbud"},
                             headers=auth(tokens.operator))
    resp = await client.post(url, json={"action": "follow_up", "text": "Sudah ditelepon ke 081200000105"},
                             headers=auth(tokens.operator))
    assert resp.status == 201
    with node.storage.read() as tx:
        events = {e.type: e for e in tx.ticket_events(filed["ticket_id"])}
    reply, follow = events["reporter_replied"].payload["text"], events["followed_up"].payload["text"]
    assert reply == ("Ini saya lagi, nomor saya [nomor telepon disamarkan] dan NIK [NIK disamarkan], "
                     "hubungi juga [nomor telepon disamarkan]")
    assert follow == "Sudah ditelepon ke [nomor telepon disamarkan]"
    assert "0105" not in json.dumps([e.payload for e in events.values()])


# ------------------------------------------------------- operator actions
async def test_operator_actions_happy_path(client, tokens, complaint, node):
    _, filed = await file(client, tokens.intake, complaint)
    url = f"/api/v1/complaints/{filed['ticket_id']}/events"
    steps = [
        ({"action": "route", "institution": "paser-disdikbud", "actor": "Admin Paser"}, "dispositioned"),
        ({"action": "accept", "actor": "Operator Disdikbud"}, "in_progress"),
        ({"action": "follow_up", "text": "Sekolah diminta mengembalikan pungutan seragam."}, "followed_up"),
        ({"action": "close", "reason": "selesai ditindaklanjuti"}, "closed"),
        ({"action": "reopen", "reason": "pelapor belum menerima pengembalian"}, "reopened"),
        ({"action": "follow_up", "text": "Pengembalian dana sudah diterima orang tua."}, "followed_up"),
    ]
    for action, status in steps:
        resp = await client.post(url, json=action, headers=auth(tokens.operator))
        assert resp.status == 201, await resp.text()
        state = await resp.json()
        assert state["status"] == status
    assert state["institution"] == "paser-disdikbud" and state["holder_node"] == "kab-paser"
    assert [f["text"] for f in state["followups"]] == [steps[2][0]["text"], steps[5][0]["text"]]

    resp = await client.get(url, headers=auth(tokens.operator))
    events = (await resp.json())["events"]
    assert [e["type"] for e in events] == ["created", "routed", "accepted", "followed_up", "closed", "reopened",
                                           "followed_up"]
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert all(e["author"] == "kab-paser" and e["key"] == node.keys.signing_key_id for e in events)
    for earlier, later in zip(events, events[1:]):
        assert later["prev"] == earlier["id"] and later["parents"] == [earlier["id"]]
        assert later["hlc"] > earlier["hlc"]
    assert events[1]["payload"] == {"actor": "Admin Paser", "institution": "paser-disdikbud", "node": "kab-paser",
                                    "reason": "manual"}

    resp = await client.get("/api/v1/complaints?status=followed_up&institution=paser-disdikbud",
                            headers=auth(tokens.operator))
    assert [i["ticket_id"] for i in (await resp.json())["items"]] == [filed["ticket_id"]]
    with node.storage.read() as tx:  # every event queued for the hub, in the same transactions
        assert [e.id for _, e in tx.outbox_batch(node.hub_id, 0, 100)] == [e["id"] for e in events]


# ----------------------------------------------------------------- auth
@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/complaints"), ("GET", "/api/v1/complaints"), ("GET", "/api/v1/complaints/x"),
    ("GET", "/api/v1/complaints/x/events"), ("POST", "/api/v1/complaints/x/events"),
])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", "Basic Zm9vOmJhcg==", "Bearer "])
async def test_missing_or_wrong_token_is_401(client, node, db_snapshot, method, path, header):
    before = db_snapshot(node.storage)
    headers = {"Authorization": header} if header else {}
    resp = await client.request(method, path, json={"action": "verify"}, headers=headers)
    await assert_problem(resp, 401, "token")
    assert db_snapshot(node.storage) == before


async def test_a_token_that_is_not_utf8_is_401(client, node, db_snapshot):
    """aiohttp keeps the bytes of such a header as lone surrogates; they must not reach an encoder (a 500)."""
    import asyncio
    before = db_snapshot(node.storage)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/v1/complaints HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
                 b"Connection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and b"application/problem+json" in head, head
    assert b"unknown bearer token" in body
    assert db_snapshot(node.storage) == before


@pytest.mark.parametrize("signature_input, reason", [
    ('simpul=("@method"', "Malformed structured header"),
    ('sig1=("@method");created=1', "No signatures found"),
])
async def test_a_federation_request_whose_signature_cannot_be_read_is_told_why(client, signature_input, reason):
    """The refusal is signed without covering the request's signature (it cannot), and says what is wrong
    with it, instead of failing to sign and reporting that."""
    resp = await client.post("/federation/v1/events", data=b"{}", headers={
        "Content-Type": "application/json", "Signature-Input": signature_input, "Signature": "sig1=:AAAA:"})
    problem = await assert_problem(resp, 401)
    assert reason in problem["detail"] and "cannot sign" not in problem["detail"], problem
    assert "simpul=" in resp.headers["Signature"]


async def test_a_method_the_resource_has_not_is_405_naming_those_it_has(client, tokens):
    resp = await client.request("PUT", "/api/v1/complaints", headers=auth(tokens.admin))
    await assert_problem(resp, 405)
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_intake_token_on_operator_endpoints_is_403(client, tokens, complaint, node, db_snapshot):
    _, filed = await file(client, tokens.intake, complaint)
    before = db_snapshot(node.storage)
    resp = await client.get("/api/v1/complaints", headers=auth(tokens.intake))
    await assert_problem(resp, 403, "intake")
    resp = await client.post(f"/api/v1/complaints/{filed['ticket_id']}/events", json={"action": "verify"},
                             headers=auth(tokens.intake))
    await assert_problem(resp, 403, "intake")
    assert db_snapshot(node.storage) == before
    for token in (tokens.operator, tokens.admin):
        resp = await client.get("/api/v1/complaints", headers=auth(token))
        assert resp.status == 200


# --------------------------------------------- openapi, health, metrics
async def test_openapi_document(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    paths = doc["paths"]
    for path, methods in {"/api/v1/complaints": {"get", "post"}, "/api/v1/complaints/{ticket_id}": {"get"},
                          "/api/v1/complaints/{ticket_id}/events": {"get", "post"},
                          "/api/v1/sync/status": {"get"}, "/healthz": {"get"}, "/readyz": {"get"},
                          "/metrics": {"get"}, "/federation/v1/keys": {"get"}}.items():
        assert methods <= set(paths[path]), path
    for path, ops in paths.items():
        for method, op in ops.items():
            assert "responses" in op and op["responses"], (path, method)
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"{(\w+)}", path)), (path, method)
    served = {(r.resource.canonical, r.method.lower()) for r in client.app.router.routes()
              if r.method != "HEAD" and r.resource.canonical.startswith(("/api/v1/", "/healthz", "/readyz", "/metrics",
                                                                        "/federation/v1/keys"))}
    assert served == {(p, m) for p, ops in paths.items() for m in ops}   # every route, and nothing else
    complaint_schema = doc["components"]["schemas"]["ComplaintIn"]
    assert set(PUBLIC_FIELDS) <= set(complaint_schema["properties"])
    assert {"type", "category", "region", "title", "body"} <= set(complaint_schema["required"])
    assert "additionalProperties" in complaint_schema and complaint_schema["additionalProperties"] is False

    def refs(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from refs(v)
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref


async def test_health_ready_metrics(client, tokens, complaint):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"
    await file(client, tokens.intake, complaint)
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert "simpul_events" in text
    value = next(line for line in text.splitlines() if line.startswith("simpul_events "))
    assert float(value.split()[1]) == 1.0


async def test_a_sqlite_node_short_of_disk_space_is_not_ready(client, monkeypatch):
    """A full disk refuses every write while reads go on: before, /readyz kept answering "ready"."""
    import collections

    from adapters.http import api
    monkeypatch.setattr(api.shutil, "disk_usage", lambda path: collections.namedtuple(
        "usage", "total used free")(10**9, 10**9 - 4096, 4096))
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["status"].startswith("disk almost full: 4 KiB free in ")


# ------------------------------------------- independent verification
def jcs(value) -> str:
    """RFC 8785 for the JSON subset events use (no floats), written independently of the
    ``rfc8785`` package: object keys sorted by UTF-16 code units, no whitespace, strings
    as ECMAScript's JSON.stringify writes them (which json.dumps with ensure_ascii=False matches)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise TypeError(f"not in the event JSON subset: {value!r}")


def test_jcs_matches_rfc8785_examples():
    # RFC 8785 section 3.2.3: property sorting by UTF-16 code units
    data = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\U0001F600": "Emoji: Grinning Face", "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"}
    order = list(json.loads(jcs(data)).values())
    assert order == ["Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis", "Euro Sign",
                     "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh"]
    assert jcs(data).startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')
    # section 3.2.2.2: only ", \\ and controls are escaped; controls use the short forms or lowercase \\u00xx
    assert jcs(["\u20ac$\u000f\nA'B\"\\\\\"/", True, False, None, [], {}, 0, -12]) == \
        '["\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/",true,false,null,[],{},0,-12]'


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_events_verify_independently(client, tokens, complaint, sample_complaints):
    tricky = dict(complaint, title="Pungutan “seragam” — SMP \\ Tanah Grogot 😀", body=complaint["body"] + "\n\tDST.")
    ticket_ids = []
    for c in (complaint, tricky, sample_complaints[5]):
        _, filed = await file(client, tokens.intake, c)
        ticket_ids.append(filed["ticket_id"])
    url = f"/api/v1/complaints/{ticket_ids[0]}/events"
    for action in ({"action": "route", "institution": "paser-disdikbud"}, {"action": "accept"},
                   {"action": "follow_up", "text": "Ditangani — “segera”."}):
        assert (await client.post(url, json=action, headers=auth(tokens.operator))).status == 201

    resp = await client.get("/federation/v1/keys")
    published = (await resp.json())["keys"]
    keys = {k["key_id"]: Ed25519PublicKey.from_public_bytes(unb64u(k["public"]))
            for k in published if k["kind"] == "signing"}
    assert keys

    checked = 0
    for ticket_id in ticket_ids:
        resp = await client.get(f"/api/v1/complaints/{ticket_id}/events", headers=auth(tokens.intake))
        raw = await resp.read()
        events = json.loads(raw)["events"]
        # served exactly as stored: every event is already in canonical form
        assert raw.decode("utf-8") == '{"events":[' + ",".join(jcs(e) for e in events) + "]}"
        for e in events:
            body = {k: v for k, v in e.items() if k not in ("id", "sig")}
            data = jcs(body).encode("utf-8")
            assert hashlib.sha256(data).hexdigest() == e["id"]
            keys[e["key"]].verify(unb64u(e["sig"]), data)
            forged = jcs({**body, "payload": {**body["payload"], "title": "x"}}).encode("utf-8")
            with pytest.raises(InvalidSignature):
                keys[e["key"]].verify(unb64u(e["sig"]), forged)
            checked += 1
    assert checked == 6


async def test_dead_letters_come_a_page_at_a_time(client, node, tokens):
    with node.storage.transaction() as tx:
        tx.add_dead_letters("nasional", [(f"e{i}", "403 from peer") for i in range(7)])
        first = tx.dead_letters()[0]["id"]
        tx.mark_replayed([first + 1])
    seen, after = [], 0
    while True:
        resp = await client.get(f"/api/v1/dead-letters?limit=3&after={after}", headers=auth(tokens.admin))
        assert resp.status == 200
        page = await resp.json()
        assert len(page["items"]) <= 3
        seen += [d["event_id"] for d in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == [f"e{i}" for i in range(7) if i != 1]           # replayed ones only with all=1
    resp = await client.get("/api/v1/dead-letters?all=1", headers=auth(tokens.admin))
    assert [d["event_id"] for d in (await resp.json())["items"]] == [f"e{i}" for i in range(7)]
    for bad in ("limit=0", "limit=5001", "after=-1", "after=x"):
        resp = await client.get(f"/api/v1/dead-letters?{bad}", headers=auth(tokens.admin))
        assert resp.status == 422 and resp.content_type == "application/problem+json", bad
    resp = await client.get("/api/v1/dead-letters", headers=auth(tokens.operator))
    assert resp.status == 403


@pytest.mark.parametrize("body", [{"id": [1]}, {"ids": [True]}, {"ids": []}, {"ids": [2**63]}, {"ids": "1"},
                                  [1], {"ids": [1], "all": True}, {"ids": None}, {"ids": [1.0]}, {"ids": [0]}])
async def test_a_replay_request_not_understood_replays_nothing(client, node, tokens, body, db_snapshot):
    """Only an empty body means 'replay all'; a typo or a wrong shape is refused, not taken for it."""
    with node.storage.transaction() as tx:
        tx.add_dead_letters("nasional", [(f"e{i}", "403") for i in range(3)])
    before = db_snapshot(node.storage)
    resp = await client.post("/api/v1/dead-letters/replay", json=body, headers=auth(tokens.admin))
    await assert_problem(resp, 422, "ids")
    assert db_snapshot(node.storage) == before
    resp = await client.post("/api/v1/dead-letters/replay", headers=auth(tokens.admin))
    assert (await resp.json()) == {"replayed": 3}


@pytest.mark.parametrize("body, mentions", [
    ({"winner": "A", "reason": 123}, ["reason"]),
    ({"winner": "A", "reason": "ok", "actor": ["x"]}, ["actor"]),
    ({"winner": ["A"], "reason": "ok"}, ["winner"]),
    ({"state": {"institution": ["x"]}, "reason": "ok"}, ["institution"]),
    ({"state": {"status": ["closed"]}, "reason": "ok"}, ["status"]),
    ({"state": {"title": 5}, "reason": "ok"}, ["title"]),
    ({"state": {"holder_node": "kab-ppu"}, "reason": "ok"}, ["holder_node", "institution"]),
    ({"state": {"institution": "paser-disdikbud", "holder_node": "kab-ppu"}, "reason": "ok"}, ["holder_node"]),
    ({"winner": "A", "reason": "ok\u0000"}, ["reason"]),
    ({"winner": "A", "reason": "ok", "actor": "admin\rforged"}, ["actor", "one line"]),
])
async def test_a_malformed_resolution_is_refused_before_anything(client, tokens, node, db_snapshot, body, mentions):
    before = db_snapshot(node.storage)
    resp = await client.post("/api/v1/conflicts/nope/resolve", json=body, headers=auth(tokens.admin))
    await assert_problem(resp, 422, *mentions)
    assert db_snapshot(node.storage) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_longest_node_id_files_and_syncs_its_columns(request, aiohttp_client, tmp_path, make_node,
                                                                sample_dir, complaint, backend, monkeypatch):
    """PostgreSQL enforces column widths: the tracking number and the sync lease owner built from the
    longest node id must fit them (SQLite would store anything)."""
    from node.sync import SyncEngine
    url = request.getfixturevalue("pg_database")() if backend == "postgresql" else None
    node_id = "k" + "-x" * 23 + "y"                     # 48 characters, the most NODE_ID_PATTERN allows
    node = make_node(tmp_path, node_id=node_id, database_url=url, federation=sample_dir / "federation.json")
    client = await aiohttp_client(build_app(node))
    resp, filed = await file(client, node.settings.tokens.intake, complaint)
    assert resp.status == 201 and filed["tracking_id"].startswith(node_id.upper())
    monkeypatch.setattr("socket.gethostname", lambda: "pod-" + "a" * 200 + ".cluster.local")
    engine = SyncEngine(node, None, None)
    with node.storage.transaction() as tx:
        assert tx.take_lease("nasional", engine.owner, 1.0, 30.0)
    with node.storage.read() as tx:
        assert tx.peer("nasional")["lease_owner"] == engine.owner


async def test_a_serving_sqlite_node_checkpoints_its_wal_on_a_thread_it_stops_on_shutdown(aiohttp_client, node,
                                                                                          tokens, complaint):
    client = await aiohttp_client(build_app(node))
    checkpointer = client.app["checkpointer"]
    assert checkpointer.running
    resp, _ = await file(client, tokens.intake, complaint)
    assert resp.status == 201
    await client.close()
    assert not checkpointer.running
