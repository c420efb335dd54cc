"""The hub's node directory over the admin API (``POST /api/v1/admin/nodes``, ``.../revoke``), on a real
hub made by ``simpul init``: what it refuses, and that a refusal changes nothing."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.http.app import build_app
from adapters.hub_http import HttpTransport
from adapters.transport import Peer
from node.errors import PeerError
from node.keys import raw_public


def _public() -> str:
    return raw_public(Ed25519PrivateKey.generate().public_key())


def _enrolment(**over) -> dict:
    return {"node_id": "kab-baru", "role": "district", "url": "http://127.0.0.1:8799", "name": "Kabupaten Baru",
            "region": "6401", "keys": [{"key_id": "kab-baru#sig-1", "kind": "signing", "public": _public()}],
            **over}


@pytest.fixture
def hub(make_node, tmp_path, sample_dir):
    return make_node(tmp_path / "hub", role="hub", node_id="nasional", federation=sample_dir / "federation.json")


@pytest.fixture
def district(make_node, tmp_path, sample_dir):
    return make_node(tmp_path / "paser", federation=sample_dir / "federation.json")


async def _post(client, node, path: str, body: dict | None = None):
    resp = await client.post(path, json=body if body is not None else {},
                             headers={"Authorization": f"Bearer {node.settings.tokens.admin}"})
    return resp, await resp.json()


BAD_ENROLMENTS = [   # (id, fields changed, words the detail holds)
    ("url-without-host", {"url": "http://"}, ["url", "host"]),
    ("url-with-a-space", {"url": "http://a b"}, ["url", "spaces"]),
    ("url-half-an-ipv6-address", {"url": "https://[::1"}, ["url", "IPv6"]),
    ("url-with-a-line-break", {"url": "http://127.0.0.1\n:8799"}, ["url", "control characters"]),
    ("url-port-out-of-range", {"url": "http://127.0.0.1:99999"}, ["url", "Port out of range"]),
    ("name-with-nul", {"name": "Kabupaten\u0000Baru"}, ["name", "one line"]),
    ("name-too-long", {"name": "K" * 201}, ["name", "200"]),
    ("region-not-a-code", {"region": "Paser"}, ["region"]),
    ("sealing-key-named-as-signing", {"keys": [{"key_id": "kab-baru#sig-1", "kind": "sealing",
                                                 "public": _public()}]}, ["kab-baru#sig-1", "signing key by its id"]),
]


@pytest.mark.parametrize("case", BAD_ENROLMENTS, ids=[c[0] for c in BAD_ENROLMENTS])
async def test_an_enrolment_the_hub_could_not_use_is_refused_and_changes_nothing(hub, aiohttp_client, db_snapshot,
                                                                                case):
    """Before, any URL starting with http:// was taken. With "http://" enrolled, every pull from that node
    failed to be signed, and the hub stopped pulling from the nodes listed after it."""
    _, over, words = case
    client = await aiohttp_client(build_app(hub))
    before = db_snapshot(hub.storage)
    resp, data = await _post(client, hub, "/api/v1/admin/nodes", _enrolment(**over))
    assert resp.status == 422 and resp.content_type == "application/problem+json", data
    for word in words:
        assert word in data["detail"], (word, data["detail"])
    assert db_snapshot(hub.storage) == before


async def test_a_key_id_enrolled_already_keeps_its_public_key(hub, aiohttp_client, db_snapshot):
    """Re-enrolling the same keys is harmless (a node's URL changes, say); the same key id with another public
    key is refused: events signed under that id would no longer verify. Before, it replaced the key."""
    client = await aiohttp_client(build_app(hub))
    first = _enrolment()
    assert (await _post(client, hub, "/api/v1/admin/nodes", first))[0].status == 201
    moved = dict(first, url="http://127.0.0.1:8800")
    resp, entry = await _post(client, hub, "/api/v1/admin/nodes", moved)
    assert resp.status == 201 and entry["url"] == "http://127.0.0.1:8800"
    before = db_snapshot(hub.storage)
    swapped = dict(moved, keys=[dict(first["keys"][0], public=_public())])
    resp, data = await _post(client, hub, "/api/v1/admin/nodes", swapped)
    assert resp.status == 409 and "kab-baru#sig-1" in data["detail"] and "new id" in data["detail"]
    assert db_snapshot(hub.storage) == before


async def test_revoking_is_the_hubs_and_never_itself(hub, district, aiohttp_client, db_snapshot):
    """A district's directory is a copy of the hub's: a revocation made there was undone by its next refresh
    (and kept, if it revoked itself)."""
    at_district = await aiohttp_client(build_app(district))
    before = db_snapshot(district.storage)
    resp, data = await _post(at_district, district, "/api/v1/admin/nodes/kab-ppu/revoke")
    assert resp.status == 404 and "at the hub" in data["detail"]
    assert db_snapshot(district.storage) == before

    at_hub = await aiohttp_client(build_app(hub))
    before = db_snapshot(hub.storage)
    resp, data = await _post(at_hub, hub, "/api/v1/admin/nodes/nasional/revoke")
    assert resp.status == 422 and "cannot revoke itself" in data["detail"]
    assert db_snapshot(hub.storage) == before
    resp, entry = await _post(at_hub, hub, "/api/v1/admin/nodes/kab-ppu/revoke")
    assert resp.status == 200 and entry["revoked_at"]


@pytest.mark.parametrize("url", ["http://", "https://[::1"])
async def test_a_peer_url_that_cannot_be_requested_is_a_peer_error(hub, url):
    """A URL stored before enrolment checked it: the sync loop backs off and shows it, as for an outage,
    instead of failing with a SignatureError nothing expected."""
    transport = HttpTransport(hub.keys, lambda key_id: None, attempts=1)
    try:
        with pytest.raises(PeerError) as caught:
            await transport.pull(Peer("kab-baru", url), 0, 10)
    finally:
        await transport.close()
    assert "cannot send to" in str(caught.value) and not caught.value.refused
