"""Confidentiality endpoints and the institution-key CLI against a real node
(real aiohttp app, real SQLite database made by ``simpul init``)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from adapters.http.app import build_app
from node import sealing
from node.cli import main
from node.errors import ValidationError
from node.identity import IdentityService

PROBLEM = "https://simpul.example/problems/"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(sealing, "SCRYPT_N", 2**4)


@pytest.fixture
def node(tmp_path, make_node, sample_dir):
    return make_node(tmp_path, federation=sample_dir / "federation.json")


@pytest.fixture
async def client(aiohttp_client, node):
    return await aiohttp_client(build_app(node))


@pytest.fixture
def samples(sample_complaints):
    return {c["ref"]: c for c in sample_complaints}


async def file(client, node, body) -> str:
    resp = await client.post("/api/v1/complaints", json=body, headers=auth(node.settings.tokens.intake))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["ticket_id"]


async def open_identity(client, token, ticket_id, body):
    resp = await client.post(f"/api/v1/complaints/{ticket_id}/identity", json=body, headers=auth(token))
    return resp.status, await resp.json()


async def test_origin_operator_opens_identity_only_with_a_reason_and_it_is_audited(client, node, samples):
    tokens = node.settings.tokens
    ticket_id = await file(client, node, samples["S001"])
    status, body = await open_identity(client, tokens.operator, ticket_id, {"reason": "telepon pelapor",
                                                                            "actor": "Budi"})
    assert status == 200, body
    assert body["identity"]["name"] == "Sri Wahyuningsih" and body["source"] == "origin"
    for token in (tokens.admin, tokens.intake):                    # operator role only
        status, body = await open_identity(client, token, ticket_id, {"reason": "x" * 5})
        assert status == 403 and body["type"] == PROBLEM + "forbidden"
    status, body = await open_identity(client, tokens.operator, ticket_id, {})
    assert status == 422 and "reason" in body["detail"]
    for reason in ("  x ", "\u200bx\u200b"):                                                # (were 200)
        status, body = await open_identity(client, tokens.operator, ticket_id, {"reason": reason})
        assert status == 422 and "reason" in body["detail"] and "at least 3" in body["detail"], reason
    status, body = await open_identity(client, tokens.operator, ticket_id,
                                       {"reason": "telepon pelapor", "actor": "Budi\u2028Ani"})
    assert status == 422 and "actor" in body["detail"] and "one line" in body["detail"]
    with pytest.raises(ValidationError, match="one line"):   # the console's way in, past the API's model
        IdentityService(node).open(ticket_id, role="console-admin", actor_name="Budi\nAni", reason="telepon pelapor")
    resp = await client.get(f"/api/v1/complaints/{ticket_id}/audit", headers=auth(tokens.admin))
    audit = (await resp.json())["items"]
    assert [(a["actor"], a["action"], a["detail"]) for a in audit] == [
        ("operator:Budi", "identity_opened", "telepon pelapor")]
    resp = await client.get(f"/api/v1/complaints/{ticket_id}/audit", headers=auth(tokens.operator))
    assert resp.status == 403                                      # the audit is for admins


async def test_anonymous_identity_is_refused_even_at_the_origin(client, node, samples):
    ticket_id = await file(client, node, samples["S006"])
    status, body = await open_identity(client, node.settings.tokens.operator, ticket_id, {"reason": "perlu"})
    assert status == 403
    assert body["detail"].startswith("anonymous report: the identity stays at the origin node; "
                                     "contact the reporter through kab-paser")
    assert "Maya" not in json.dumps(body)


async def test_public_listing_never_shows_rahasia_reports_or_identities(client, node, samples):
    for ref in ("S001", "S006", "S009", "S012", "S035"):             # S009, S012, S035 are rahasia
        await file(client, node, samples[ref])
    resp = await client.get("/api/v1/public/complaints")             # no token
    assert resp.status == 200
    data = await resp.json()
    titles = {i["title"] for i in data["items"]}
    assert titles == {samples["S001"]["title"], samples["S006"]["title"]} and data["total"] == 2
    text = json.dumps(data, ensure_ascii=False)
    for ref in ("S001", "S006", "S009", "S012", "S035"):
        rep = samples[ref]["reporter"]
        assert rep["name"] not in text and rep["nik"] not in text and rep["phone"] not in text
    assert "sealed_identity" not in text and "identity" not in data["items"][0]
    resp = await client.get("/api/v1/public/complaints?rahasia=1")
    assert resp.status == 422                                        # cannot ask for them either


async def test_the_verifying_admin_raises_the_privacy_flags_the_reporter_did_not(client, node, samples):
    """The design's "set by the reporter or by the verifying admin": before, no action could set them after
    filing, and an admin who saw that a report needed them could not. A flag is raised, never lowered."""
    ticket_id = await file(client, node, samples["S001"])
    headers = auth(node.settings.tokens.operator)
    for bad in ({"action": "verify", "rahasia": False}, {"action": "accept", "anonim": True},
                {"action": "verify", "anonim": "yes"}):
        resp = await client.post(f"/api/v1/complaints/{ticket_id}/events", json=bad, headers=headers)
        assert resp.status == 422, (bad, await resp.text())
    resp = await client.get("/api/v1/public/complaints")
    assert (await resp.json())["total"] == 1
    resp = await client.post(f"/api/v1/complaints/{ticket_id}/events",
                             json={"action": "verify", "rahasia": True, "anonim": True}, headers=headers)
    assert resp.status == 201, await resp.text()
    state = await resp.json()
    assert (state["rahasia"], state["anonim"], state["status"]) == (True, True, "verified")
    assert (await (await client.get("/api/v1/public/complaints")).json())["total"] == 0
    status, body = await open_identity(client, node.settings.tokens.operator, ticket_id, {"reason": "perlu"})
    assert status == 403 and "anonymous" in body["detail"]


async def test_followups_reach_the_reporter_through_the_origin(client, node, samples):
    tokens = node.settings.tokens
    ticket_id = await file(client, node, samples["S006"])
    for action in ({"action": "route", "institution": "paser-dinkes"},
                   {"action": "follow_up", "text": "Mohon datang ke Puskesmas hari Senin"}):
        resp = await client.post(f"/api/v1/complaints/{ticket_id}/events", json=action, headers=auth(tokens.operator))
        assert resp.status == 201, await resp.text()
    resp = await client.get(f"/api/v1/complaints/{ticket_id}/messages", headers=auth(tokens.intake))
    msgs = await resp.json()
    assert [m["text"] for m in msgs["messages"]] == ["Mohon datang ke Puskesmas hari Senin"]
    assert msgs["anonim"] is True


def test_institution_keygen_wraps_the_key_and_the_directory_publishes_only_the_public_part(
        tmp_path, make_node, sample_dir, monkeypatch):
    from node import directory
    hub = make_node(tmp_path, role="hub", node_id="nasional", federation=sample_dir / "federation.json")
    cfg = str(hub.settings.data_dir / "simpul.toml")
    runner = CliRunner()
    monkeypatch.delenv("SIMPUL_INSTITUTION_PASSPHRASE", raising=False)
    result = runner.invoke(main, ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--config", cfg])
    assert result.exit_code != 0 and "SIMPUL_INSTITUTION_PASSPHRASE" in result.output
    result = runner.invoke(main, ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--config", cfg,
                                  "--passphrase", "on the command line"])
    assert result.exit_code != 0                                      # no such option, by design
    result = runner.invoke(main, ["institutions", "keygen", "--id", "paser-pupr", "--config", cfg],
                           env={"SIMPUL_INSTITUTION_PASSPHRASE": "kata sandi PLN kaltim"})
    assert result.exit_code != 0 and "hosted by node kab-paser" in result.output
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text("kata sandi PLN kaltim\n")
    result = runner.invoke(main, ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--config", cfg,
                                  "--passphrase-file", str(pass_file)])
    assert result.exit_code == 0, result.output
    with hub.storage.read() as tx:
        inst = next(i for i in tx.institutions() if i["id"] == "pln-uid-kaltimra")
        snap = directory.snapshot(tx)
    assert inst["sealing_key_id"] == "pln-uid-kaltimra#seal-1"
    private = sealing.unwrap_private_key(json.loads(inst["wrapped_private"]), "kata sandi PLN kaltim")
    assert sealing.public_b64(private.public_key()) == inst["sealing_public"]
    published = next(i for i in snap["institutions"] if i["id"] == "pln-uid-kaltimra")
    assert published["sealing_public"] == inst["sealing_public"]
    assert "wrapped_private" not in json.dumps(snap)
    result = runner.invoke(main, ["institutions", "keygen", "--id", "pln-uid-kaltimra", "--config", cfg,
                                  "--passphrase-file", str(pass_file)])
    assert result.exit_code != 0 and "already has sealing key" in result.output


def test_a_holder_opens_a_box_sealed_to_the_key_it_rotated_to_while_running(node):
    """``simpul keys rotate --kind sealing`` beside a running node, then re-enrolment: origins seal to the
    new key. Before, the running holder answered "no private key" until it was restarted."""
    from node.keys import KeyRing
    from node.lifecycle import Status
    from node.ticket import TicketState
    rotated = KeyRing.load(node.node_id, node.settings.keys_dir)     # the CLI's ring, in its own process
    key_id = rotated.rotate("sealing")
    assert key_id not in node.keys.sealing
    identity = {"name": "Sri Wahyuningsih", "phone": "+62 812 0000 0101"}
    box = sealing.seal(identity, ticket_id="t1", recipient_key_id=key_id,
                       recipient_public=rotated.sealing[key_id].public_key())
    held = TicketState(ticket_id="t1", tracking_id="KAB-PPU-2611-00001", origin="kab-ppu", report_type="pengaduan",
                       category="infrastruktur", topic="jalan_kabupaten", region="6409", kecamatan=None,
                       title="Jalan rusak", body="Jalan rusak berat", incident_date=None, anonim=False,
                       rahasia=False, channel="web", chosen_institution=None, filed_at="2026-11-02T01:00:00Z",
                       status=Status.DISPOSITIONED, institution="paser-dinkes", holder_node=node.node_id,
                       sealed_identity={"holder_node": node.node_id, "institution": "paser-dinkes",
                                        "box": box.to_dict()})
    with node.storage.transaction() as tx:
        tx.put_ticket(held)
    opened = IdentityService(node).open("t1", role="operator", actor_name="Budi", reason="telepon pelapor")
    assert opened.identity == identity and opened.key_id == key_id and node.keys.sealing_key_id == key_id
