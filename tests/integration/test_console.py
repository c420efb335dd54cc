"""The admin console against a real app and a real SQLite node (made by ``simpul init``)."""
from __future__ import annotations

import re

import pytest

from adapters.http.app import build_app
from schemas.complaints import ComplaintIn

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def sample(sample_complaints, ref: str) -> dict:
    body = next(c for c in sample_complaints if c["ref"] == ref)
    return {k: v for k, v in body.items() if k != "ref"}


@pytest.fixture
def hub(make_node, tmp_path, sample_dir):
    return make_node(tmp_path, role="hub", node_id="nasional", federation=sample_dir / "federation.json")


@pytest.fixture
async def client(aiohttp_client, hub):
    return await aiohttp_client(build_app(hub))


async def csrf_from(client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    match = CSRF.search(await resp.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def login(client, password: str, **headers):
    token = await csrf_from(client, "/admin/login")
    return await client.post("/admin/login", data={"csrf": token, "username": "admin", "password": password,
                                                   "next": "/admin/"}, allow_redirects=False, headers=headers)


async def logged_in(client, hub):
    resp = await login(client, hub.settings.admin_password)
    assert resp.status == 303, await resp.text()
    return resp


# ------------------------------------------------------------------ access control
async def test_unauthenticated_get_redirects_to_login(client):
    for path in ("/admin/", "/admin/tickets", "/admin/dead-letters", "/admin/disposition", "/admin/conflicts",
                 "/admin/no-such-page"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/admin/login?next="), path
    resp = await client.get("/admin", allow_redirects=True)
    assert resp.url.path == "/admin/login"


async def test_login_page_and_css_are_public(client):
    resp = await client.get("/admin/login")
    assert resp.status == 200
    html = await resp.text()
    assert "Masuk ke konsol admin" in html and 'href="/admin/static/console.css"' in html
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    css = await client.get("/admin/static/console.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]


async def test_post_without_session_is_refused(client, hub, db_snapshot):
    before = db_snapshot(hub.storage)
    for path in ("/admin/dead-letters/replay", "/admin/disposition/x", "/admin/logout",
                 "/admin/conflicts/x/resolve", "/admin/tickets/x/identity"):
        resp = await client.post(path, data={"all": "1"}, allow_redirects=False)
        assert resp.status == 403, path
    assert db_snapshot(hub.storage) == before


async def test_wrong_password_is_an_error(client):
    resp = await login(client, "not-the-password")
    assert resp.status == 401
    assert "Nama pengguna atau kata sandi salah" in await resp.text()
    assert (await client.get("/admin/", allow_redirects=False)).status == 303


async def test_login_without_its_form_token_is_refused(client, hub):
    resp = await client.post("/admin/login", data={"username": "admin", "password": hub.settings.admin_password},
                             allow_redirects=False)
    assert resp.status == 403


async def test_login_then_dashboard_with_peer_table(client, hub):
    resp = await logged_in(client, hub)
    cookie = resp.cookies["simpul_nasional"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin"
    resp = await client.get("/admin/")
    assert resp.status == 200
    html = await resp.text()
    assert 'id="peers"' in html or "Belum ada node mitra" in html
    assert "Kesehatan sinkronisasi" in html and 'id="by-status"' in html and 'id="sla"' in html
    assert resp.headers["Cache-Control"] == "no-store"


async def test_the_dashboard_says_when_a_chain_was_recovered_and_which_tracking_numbers_changed(client, hub):
    """What a restored district's chain recovery did (node.chain) is on its dashboard: a reporter who calls
    with the number on their receipt must be found under the new one."""
    import orjson
    with hub.storage.transaction() as tx:
        tx.meta_set("chain_recovery", orjson.dumps({"at": 1795969379.0, "recovered": 4, "resigned": 2,
                                                    "renumbered": [["t1", "KAB-PASER-2611-00004",
                                                                    "KAB-PASER-2611-00007"]],
                                                    "dropped": []}).decode())
    await logged_in(client, hub)
    html = await (await client.get("/admin/")).text()
    assert 'id="chain-recovery"' in html and "4 peristiwa diambil kembali, 2 ditandatangani ulang" in html
    assert "Nomor pelacakan KAB-PASER-2611-00004 kini KAB-PASER-2611-00007" in html


async def test_language_switch_is_remembered(client, hub):
    await logged_in(client, hub)
    resp = await client.get("/admin/?lang=en")
    assert "Sync health" in await resp.text()
    assert "Tickets" in await (await client.get("/admin/tickets")).text()
    assert "Kesehatan sinkronisasi" in await (await client.get("/admin/?lang=id")).text()


async def test_post_with_wrong_or_missing_csrf_is_refused(client, hub, db_snapshot):
    await logged_in(client, hub)
    before = db_snapshot(hub.storage)
    for data in ({"all": "1"}, {"all": "1", "csrf": "forged"}):
        resp = await client.post("/admin/dead-letters/replay", data=data, allow_redirects=False)
        assert resp.status == 403
        assert "CSRF" in await resp.text()
    assert db_snapshot(hub.storage) == before


async def test_post_from_a_foreign_origin_is_refused(client, hub):
    await logged_in(client, hub)
    token = await csrf_from(client, "/admin/dead-letters")
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}):
        resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "all": "1"},
                                 headers=headers, allow_redirects=False)
        assert resp.status == 403, headers
    own = f"http://{client.server.host}:{client.server.port}"
    resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "all": "1"},
                             headers={"Origin": own}, allow_redirects=False)
    assert resp.status == 303


async def test_login_from_a_foreign_origin_is_refused(client, hub):
    resp = await login(client, hub.settings.admin_password, Origin="https://evil.example")
    assert resp.status == 403


async def test_logout_ends_the_session(client, hub):
    await logged_in(client, hub)
    token = await csrf_from(client, "/admin/")
    resp = await client.post("/admin/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/login"
    assert (await client.get("/admin/", allow_redirects=False)).status == 303
    resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "all": "1"}, allow_redirects=False)
    assert resp.status == 403


async def test_stolen_session_token_from_another_cookie_name_does_not_work(client, hub):
    resp = await logged_in(client, hub)
    token = resp.cookies["simpul_nasional"].value
    client.session.cookie_jar.clear()
    resp = await client.get("/admin/", cookies={"simpul_kab-paser": token}, allow_redirects=False)
    assert resp.status == 303


async def test_repeated_failures_are_throttled(client, hub):
    for _ in range(10):
        assert (await login(client, "wrong-password")).status == 401
    assert (await login(client, hub.settings.admin_password)).status == 429


# ------------------------------------------------------------------ operations
async def test_disposition_assign_routes_the_ticket(client, hub, sample_complaints):
    filed = await hub.db(hub.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S020")), None)
    ticket_id = filed.state.ticket_id
    await logged_in(client, hub)
    resp = await client.get("/admin/disposition")
    html = await resp.text()
    assert f'data-ticket="{ticket_id}"' in html
    token = CSRF.search(html).group(1)
    resp = await client.post(f"/admin/disposition/{ticket_id}",
                             data={"csrf": token, "institution": "paser-dpmptsp", "reason": "pungutan izin usaha"})
    assert resp.status == 200 and resp.url.path == "/admin/disposition"
    html = await resp.text()
    assert f'data-ticket="{ticket_id}"' not in html
    assert "didisposisikan ke paser-dpmptsp" in html
    state = await hub.db(hub.complaints.get, ticket_id)
    assert (state.status.value, state.institution, state.holder_node) == ("dispositioned", "paser-dpmptsp",
                                                                           "kab-paser")
    with hub.storage.read() as tx:
        routed = [e for e in tx.ticket_events(ticket_id) if e.type == "routed"]
        assert tx.outbox_depth("kab-paser", 0) >= 1
    assert routed[-1].payload["actor"] == "admin console"
    assert routed[-1].payload["reason"] == "pungutan izin usaha"


async def test_disposition_rejects_an_unknown_institution(client, hub, sample_complaints):
    filed = await hub.db(hub.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S020")), None)
    await logged_in(client, hub)
    token = await csrf_from(client, "/admin/disposition")
    resp = await client.post(f"/admin/disposition/{filed.state.ticket_id}",
                             data={"csrf": token, "institution": "no-such-office"})
    assert "Disposisi gagal" in await resp.text()
    assert (await hub.db(hub.complaints.get, filed.state.ticket_id)).institution is None


async def test_dead_letter_replay_requeues(client, hub, sample_complaints):
    filed = await hub.db(hub.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S020")), None)
    with hub.storage.read() as tx:
        event_id = tx.ticket_events(filed.state.ticket_id)[0].id
    with hub.storage.transaction() as tx:
        depth_before = tx.outbox_depth("kab-ppu", 0)
        tx.add_dead_letters("kab-ppu", [(event_id, "422: refused by test"), (event_id, "second copy")])
    await logged_in(client, hub)
    resp = await client.get("/admin/dead-letters")
    html = await resp.text()
    assert "422: refused by test" in html and f"/admin/tickets/{filed.state.ticket_id}" in html
    with hub.storage.read() as tx:
        first = min(d["id"] for d in tx.dead_letters())
    token = CSRF.search(html).group(1)
    resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "id": str(first)})
    html = await resp.text()
    assert "1 pesan dikirim ulang" in html and "422: refused by test" not in html and "second copy" in html
    resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "all": "1"})
    assert 'id="no-dead-letters"' in await resp.text()
    with hub.storage.read() as tx:
        assert tx.dead_letters() == []
        assert tx.outbox_depth("kab-ppu", 0) == depth_before + 2


async def test_odd_numbers_in_pages_and_forms_are_not_errors(client, hub):
    """"²" passes str.isdigit but not int(); a 20-digit number overflows the database's integers."""
    await logged_in(client, hub)
    for page in ("%C2%B2", "99999999999999999999", "-1", "x"):
        resp = await client.get(f"/admin/tickets?page={page}")
        assert resp.status == 200, page
    with hub.storage.transaction() as tx:
        tx.add_dead_letters("kab-ppu", [("e" * 64, "403")])
    token = CSRF.search(await (await client.get("/admin/dead-letters")).text()).group(1)
    for raw in ("²", "99999999999999999999", "0"):
        resp = await client.post("/admin/dead-letters/replay", data={"csrf": token, "id": raw})
        assert resp.status == 200 and "Tidak ada pesan yang dipilih" in await resp.text(), raw
    with hub.storage.read() as tx:
        assert tx.dead_letter_count() == 1


async def test_a_large_dead_letter_list_shows_the_oldest_and_replays_all(client, hub):
    from adapters.http.console_ops import DEAD_LETTERS_SHOWN
    n = DEAD_LETTERS_SHOWN + 50
    with hub.storage.transaction() as tx:
        tx.add_dead_letters("kab-ppu", [(f"{i:064x}", f"refused #{i}") for i in range(n)])
    await logged_in(client, hub)
    html = await (await client.get("/admin/dead-letters")).text()
    assert html.count('<tr data-id="') == DEAD_LETTERS_SHOWN
    assert "refused #0<" in html and f"refused #{n - 1}<" not in html
    assert 'id="dead-letters-more"' in html and f"{DEAD_LETTERS_SHOWN} yang tertua dari {n}" in html
    assert f"Kirim ulang semua ({n})" in html
    resp = await client.post("/admin/dead-letters/replay", data={"csrf": CSRF.search(html).group(1), "all": "1"})
    assert f"{n} pesan dikirim ulang" in await resp.text()
    with hub.storage.read() as tx:
        assert tx.dead_letter_count() == 0


async def test_ticket_timeline_shows_verified_events(client, hub, sample_complaints):
    filed = await hub.db(hub.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S001")), None)
    await logged_in(client, hub)
    resp = await client.get(f"/admin/tickets/{filed.state.ticket_id}")
    assert resp.status == 200
    html = await resp.text()
    assert "Laporan dibuat" in html and "sig-ok" in html and "sig-bad" not in html
    assert filed.state.tracking_id in html
    assert 'name="passphrase"' in html        # the hub hosts institutions whose keys a passphrase wraps
    listing = await (await client.get("/admin/tickets")).text()
    assert filed.state.tracking_id in listing
    assert (await client.get("/admin/tickets/nope")).status == 404


async def test_timeline_never_shows_the_reporter(client, hub, sample_complaints):
    body = sample(sample_complaints, "S001")
    filed = await hub.db(hub.complaints.file, ComplaintIn.model_validate(body), None)
    await logged_in(client, hub)
    html = await (await client.get(f"/admin/tickets/{filed.state.ticket_id}")).text()
    for value in body["reporter"].values():
        assert value not in html


async def test_district_console_has_no_disposition_queue(aiohttp_client, make_node, tmp_path, sample_dir):
    node = make_node(tmp_path, federation=sample_dir / "federation.json")
    client = await aiohttp_client(build_app(node))
    resp = await logged_in(client, node)
    assert "simpul_kab-paser" in resp.cookies
    html = await (await client.get("/admin/")).text()
    assert "/admin/disposition" not in html and "daerah" in html
    html = await (await client.get("/admin/disposition")).text()
    assert "hanya ada di hub" in html


async def test_a_district_never_asks_for_an_institutions_passphrase(aiohttp_client, make_node, tmp_path,
                                                                     sample_dir, sample_complaints):
    node = make_node(tmp_path, federation=sample_dir / "federation.json")
    filed = await node.db(node.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S001")), None)
    client = await aiohttp_client(build_app(node))
    await logged_in(client, node)
    html = await (await client.get(f"/admin/tickets/{filed.state.ticket_id}")).text()
    assert 'name="reason"' in html and 'name="passphrase"' not in html


async def test_refusals_are_hardened_and_odd_forms_do_not_crash(client, hub):
    from aiohttp import FormData
    await logged_in(client, hub)
    form = FormData()
    form.add_field("csrf", b"not-a-string", filename="csrf.txt", content_type="text/plain")
    resp = await client.post("/admin/dead-letters/replay", data=form, allow_redirects=False)
    assert resp.status == 403
    assert resp.headers["X-Frame-Options"] == "DENY" and "default-src 'none'" in resp.headers["Content-Security-Policy"]


UNREADABLE_FORMS = [   # (id, Content-Type, body)
    ("unknown-charset", "application/x-www-form-urlencoded; charset=bogus", b"csrf=x&a=b"),
    ("broken-multipart", "multipart/form-data; boundary=zz", b"junk"),
    ("not-utf8", "application/x-www-form-urlencoded", b"csrf=x&a=\xff"),
]


@pytest.mark.parametrize("path", ["/admin/login", "/admin/dead-letters/replay"])
@pytest.mark.parametrize("case", UNREADABLE_FORMS, ids=[c[0] for c in UNREADABLE_FORMS])
async def test_a_form_that_cannot_be_read_is_a_problem_before_and_after_login(client, hub, db_snapshot, caplog,
                                                                             path, case):
    """Before, ``request.post()``'s errors escaped: a 500 and a traceback, even before login."""
    _, ctype, body = case
    if path != "/admin/login":
        await logged_in(client, hub)
    before = db_snapshot(hub.storage)
    resp = await client.post(path, data=body, headers={"Content-Type": ctype}, allow_redirects=False)
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert "cannot be read" in (await resp.json())["detail"]
    assert db_snapshot(hub.storage) == before
    assert not [r for r in caplog.records if r.name == "adapters.http.problems"]


@pytest.mark.parametrize("reason, actor, words", [
    ("telepon\u0000pelapor", "Budi", ["reason", "control characters"]),
    ("x" * 501, "Budi", ["reason", "500"]),
    ("telepon pelapor", "B" * 81, ["actor", "80"]),
])
async def test_the_consoles_identity_form_keeps_the_apis_rules(make_node, tmp_path, sample_dir, sample_complaints,
                                                               aiohttp_client, db_snapshot, reason, actor, words):
    """Before, the console took any reason the API refuses (control characters, 100,000 characters), opened the
    identity and wrote the reason into the audit log."""
    node = make_node(tmp_path, federation=sample_dir / "federation.json")
    filed = await node.db(node.complaints.file, ComplaintIn.model_validate(sample(sample_complaints, "S001")), None)
    client = await aiohttp_client(build_app(node))
    await logged_in(client, node)
    page = f"/admin/tickets/{filed.state.ticket_id}"
    token = await csrf_from(client, page)
    before = db_snapshot(node.storage)
    resp = await client.post(page + "/identity", data={"csrf": token, "reason": reason, "actor": actor})
    html = await resp.text()
    assert resp.status == 422
    for word in words:
        assert word in html, word
    assert db_snapshot(node.storage) == before          # nothing opened, nothing audited


async def test_the_hub_offers_no_identity_form_for_a_ticket_it_does_not_hold(pair, aiohttp_client, sample_complaints):
    """Before, the form was there, and whatever was filled in was refused afterwards ("does not hold")."""
    from node.federation import KeyDirectory, Receiver
    from node.reactions import hub_react
    district, hub = pair
    filed = district.complaints.file(ComplaintIn.model_validate(sample(sample_complaints, "S001")))
    with district.storage.read() as tx:
        items = [{"pos": pos, "event": e.to_wire()} for pos, e in tx.outbox_batch("nasional", 0, 100)]
    Receiver(hub, KeyDirectory(hub.storage, hub.keys), hub_react(hub)).receive("kab-paser", 0, items)
    client = await aiohttp_client(build_app(hub))
    await logged_in(client, hub)
    html = await (await client.get(f"/admin/tickets/{filed.state.ticket_id}?lang=en")).text()
    assert 'id="identity-not-held"' in html and "(kab-paser) or its origin (kab-paser)" in html
    assert 'name="reason"' not in html
