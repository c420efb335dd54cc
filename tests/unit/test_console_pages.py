"""Console conflict pages against a fake conflict service (the dict shape of node.conflicts),
plus the console's pure helpers (words, event fields)."""
from __future__ import annotations

import copy
import re

import pytest

from adapters.http.app import build_app
from adapters.http.console_conflicts import field_rows
from adapters.http.console_i18n import STRINGS, label, translate
from adapters.http.console_views import event_fields
from node.errors import Conflict as ConflictError, NotFound, ValidationError
from schemas.events import Event

CSRF = re.compile(r'name="csrf" value="([^"]+)"')

CONFLICT = {
    "id": "c0ffee" * 5 + "aa", "ticket_id": "t1", "tracking_id": "KAB-PASER-2603-00007",
    "kind": "archive_vs_progress", "status": "open", "provisional_winner": "B",
    "differs": ["status", "followups"],
    "sides": [
        {"label": "A", "author": "nasional",
         "events": [{"id": "e1", "type": "archived", "author": "nasional", "hlc": "0001772000000000.0000",
                     "payload": {"reason": "duplikat"}}],
         "state": {"status": "archived", "institution": "paser-pupr", "holder_node": "kab-paser",
                   "title": "Jalan rusak", "body": "Jalan berlubang", "followups": []}},
        {"label": "B", "author": "kab-paser",
         "events": [{"id": "e2", "type": "followed_up", "author": "kab-paser", "hlc": "0001772000000500.0000",
                     "payload": {"text": "Sudah ditambal"}},
                    {"id": "e3", "type": "closed", "author": "kab-paser", "hlc": "0001772000000600.0000",
                     "payload": {}}],
         "state": {"status": "closed", "institution": "paser-pupr", "holder_node": "kab-paser",
                   "title": "Jalan rusak", "body": "Jalan berlubang", "followups": ["Sudah ditambal"]}},
    ],
    "resolution": None,
}


class FakeConflicts:
    def __init__(self):
        self.items = {CONFLICT["id"]: copy.deepcopy(CONFLICT)}
        self.calls = []

    def list(self, status=None):
        return [c for c in self.items.values() if status in (None, c["status"])]

    def get(self, conflict_id):
        if conflict_id not in self.items:
            raise NotFound(conflict_id)
        return self.items[conflict_id]

    def resolve(self, conflict_id, *, winner, state, reason, actor):
        self.calls.append((conflict_id, winner, state, reason, actor))
        if state is not None and state.get("status") == "bogus":
            raise ValidationError("unknown status 'bogus'")
        c = self.get(conflict_id)
        if c["status"] != "open":
            raise ConflictError(f"conflict {conflict_id} is already resolved")
        c["status"] = "resolved"
        c["resolution"] = {"event": "e9", "winner": winner or "merged", "reason": reason, "author": "nasional"}
        return c


@pytest.fixture
async def console(aiohttp_client, make_node, tmp_path, sample_dir):
    node = make_node(tmp_path, role="hub", node_id="nasional", federation=sample_dir / "federation.json")
    app = build_app(node)
    fake = FakeConflicts()
    app["conflicts"] = fake
    client = await aiohttp_client(app)
    token = CSRF.search(await (await client.get("/admin/login")).text()).group(1)
    resp = await client.post("/admin/login", data={"csrf": token, "username": "admin",
                                                   "password": node.settings.admin_password})
    assert resp.status == 200
    return client, fake


async def test_list_and_side_by_side(console):
    client, _ = console
    html = await (await client.get("/admin/conflicts")).text()
    assert f'data-conflict="{CONFLICT["id"]}"' in html and "KAB-PASER-2603-00007" in html
    html = await (await client.get(f"/admin/conflicts/{CONFLICT['id']}")).text()
    assert re.search(r'<tr class="differs" data-field="status">', html)
    assert re.search(r'<tr class="" data-field="title">', html)
    assert re.search(r'<th class="winner">Sisi B', html)
    assert "Sudah ditambal" in html and 'id="resolve"' in html
    assert (await client.get("/admin/conflicts/nope")).status == 404


async def test_resolve_by_side_shows_it_resolved(console):
    client, fake = console
    page = await (await client.get(f"/admin/conflicts/{CONFLICT['id']}")).text()
    token = CSRF.search(page).group(1)
    resp = await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve",
                             data={"csrf": token, "choice": "A", "reason": "hub benar: duplikat"})
    assert resp.url.path == f"/admin/conflicts/{CONFLICT['id']}"
    html = await resp.text()
    assert 'id="conflict-resolution"' in html and "hub benar: duplikat" in html and 'id="resolve"' not in html
    assert fake.calls == [(CONFLICT["id"], "A", None, "hub benar: duplikat", "admin console")]


async def test_the_second_of_two_admins_is_told_the_conflict_was_resolved_meanwhile(console):
    """Both opened the page while it was open; the second's form comes back as a 409. Before, the page showed
    the first one's resolution and not a word about the second's choice being refused."""
    client, fake = console
    token = CSRF.search(await (await client.get(f"/admin/conflicts/{CONFLICT['id']}")).text()).group(1)
    first = await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve",
                              data={"csrf": token, "choice": "A", "reason": "hub benar"})
    assert first.status == 200
    second = await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve",
                               data={"csrf": token, "choice": "B", "reason": "district benar"})
    assert second.status == 409 and "already resolved" in await second.text()


async def test_resolve_with_merged_state(console):
    client, fake = console
    token = CSRF.search(await (await client.get(f"/admin/conflicts/{CONFLICT['id']}")).text()).group(1)
    await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve", data={
        "csrf": token, "choice": "merged", "m_status": "closed", "m_institution": "paser-pupr",
        "m_title": "Jalan rusak di Tanah Grogot", "m_body": "Jalan berlubang besar", "reason": "gabungan"})
    assert fake.calls[-1][1:4] == (None, {"status": "closed", "institution": "paser-pupr",
                                          "title": "Jalan rusak di Tanah Grogot", "body": "Jalan berlubang besar"},
                                   "gabungan")


async def test_resolve_needs_a_reason_and_reports_service_errors(console):
    client, fake = console
    token = CSRF.search(await (await client.get(f"/admin/conflicts/{CONFLICT['id']}")).text()).group(1)
    resp = await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve", data={"csrf": token, "choice": "A"})
    assert resp.status == 422 and "Alasan wajib diisi" in await resp.text()
    resp = await client.post(f"/admin/conflicts/{CONFLICT['id']}/resolve",
                             data={"csrf": token, "choice": "merged", "m_status": "bogus", "reason": "x"})
    assert resp.status == 422 and "unknown status" in await resp.text()
    assert fake.items[CONFLICT["id"]]["status"] == "open"


async def test_conflict_pages_without_a_service(aiohttp_client, make_node, tmp_path, monkeypatch):
    from adapters.http import console_pages
    monkeypatch.setattr(console_pages, "conflict_service", lambda request: None)
    import adapters.http.console_conflicts as cc
    monkeypatch.setattr(cc, "conflict_service", lambda request: None)
    node = make_node(tmp_path)
    client = await aiohttp_client(build_app(node))
    token = CSRF.search(await (await client.get("/admin/login")).text()).group(1)
    await client.post("/admin/login", data={"csrf": token, "username": "admin",
                                            "password": node.settings.admin_password})
    for path in ("/admin/conflicts", "/admin/conflicts/x"):
        resp = await client.get(path)
        assert resp.status == 200 and "Belum tersedia" in await resp.text()


# ------------------------------------------------------------------ pure helpers
def test_both_languages_have_the_same_words():
    assert set(STRINGS["id"]) == set(STRINGS["en"])
    assert translate("en", "nav_tickets") == "Tickets" and translate("xx", "nav_tickets") == "Tiket"
    assert translate("en", "no-such-key") == "no-such-key"
    assert label("id", "status_", "closed") == "Selesai" and label("id", "kind_", "new_kind") == "new_kind"


def test_field_rows_mark_differences():
    rows = {r["name"]: r for r in field_rows(CONFLICT)}
    assert rows["status"]["differs"] and not rows["title"]["differs"]
    assert rows["followups"]["cells"] == ["—", "Sudah ditambal"]


def _event(type_: str, payload: dict) -> Event:
    return Event(id="0" * 64, sig="", ticket="t", author="kab-paser", seq=1, prev=None, parents=(),
                 hlc="0001772000000000.0000", type=type_, payload=payload, key="kab-paser#sig-1")


def test_event_fields_never_show_sealed_material():
    sealed = _event("identity_sealed", {"holder_node": "kab-ppu", "box": {"ct": "secret"}, "ciphertext": "x"})
    assert event_fields(sealed, {}) == [("holder_node", "kab-ppu")]
    unknown = _event("future_type", {"note": "hi", "sealed_identity": "secret", "reporter_name": "Siti"})
    assert event_fields(unknown, {}) == [("note", "hi")]
    routed = _event("routed", {"institution": "paser-pupr", "node": "kab-paser", "reason": "rule"})
    assert event_fields(routed, {"paser-pupr": {"name": "Dinas PUPR"}})[0] == ("institution", "Dinas PUPR (paser-pupr)")


def test_ticket_sla_uses_filing_then_disposition_dates():
    from dataclasses import replace
    from datetime import date

    from adapters.http.console_views import ticket_sla
    from node.lifecycle import Status
    from node.ticket import TicketState
    base = TicketState(ticket_id="t", tracking_id="X-1", origin="kab-paser", report_type="pengaduan",
                       category="lainnya", topic=None, region="6401", kecamatan=None, title="abc", body="abcdefghijk",
                       incident_date=None, anonim=False, rahasia=False, channel="web", chosen_institution=None,
                       filed_at="2026-03-02T03:00:00Z", last_hlc="0001772420400000.0000")  # Mon 2 Mar 2026
    assert ticket_sla(base, date(2026, 3, 5)).state == "on_time"       # Thursday: 3 working days
    assert ticket_sla(base, date(2026, 3, 6)).state == "overdue"       # Friday: 4
    routed = replace(base, status=Status.DISPOSITIONED)
    # disposition on Wednesday 4 March (HLC wall time), follow-up due within 5 working days
    wed = "0001772600000000.0000"
    assert ticket_sla(routed, date(2026, 3, 11), wed).state == "on_time"
    assert ticket_sla(routed, date(2026, 3, 12), wed).state == "overdue"
    assert ticket_sla(replace(routed, followups=({"text": "x"},)), date(2026, 3, 30), wed).state == "none"
