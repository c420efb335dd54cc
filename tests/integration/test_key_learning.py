"""A district learns a rotated hub key from the hub's endorsements (node.directory.learn_endorsed), on the
databases ``simpul init`` leaves: kab-paser trusts the hub's first signing key and nothing else of it."""
from __future__ import annotations

import pytest

from node import directory


def offered(hub) -> dict:
    """The hub's ``GET /federation/v1/keys``."""
    return {"node_id": hub.node_id, "role": "hub", "keys": [k.__dict__ for k in hub.keys.public_keys()],
            "endorsements": hub.keys.endorsements()}


def learn(district, offer: dict) -> list[str]:
    with district.storage.transaction() as tx:
        return directory.learn_endorsed(tx, "nasional", offer)


def hub_keys(district) -> list[str]:
    with district.storage.read() as tx:
        return [k["key_id"] for k in tx.node_keys("nasional") if k["kind"] == "signing"]


def test_the_hubs_rotated_keys_are_learned_through_their_endorsements(pair):
    district, hub = pair
    assert learn(district, offered(hub)) == []                       # nothing new yet
    hub.keys.rotate("signing")
    hub.keys.rotate("signing")
    assert learn(district, offered(hub)) == ["nasional#sig-2", "nasional#sig-3"]
    assert hub_keys(district) == ["nasional#sig-1", "nasional#sig-2", "nasional#sig-3"]


@pytest.mark.parametrize("case", ["another node's answer", "hub revoked here", "no endorsements"])
def test_nothing_is_learned_without_a_trusted_chain(pair, case):
    district, hub = pair
    hub.keys.rotate("signing")
    offer = offered(hub)
    if case == "another node's answer":
        offer["node_id"] = "kab-ppu"
    elif case == "hub revoked here":
        with district.storage.transaction() as tx:
            tx.revoke_node("nasional", 1.0)
    else:
        offer["endorsements"] = "none"
    assert learn(district, offer) == []
    assert hub_keys(district) == ["nasional#sig-1"]


@pytest.mark.parametrize("body, error", [
    (b'{"node_id": "nasional", "keys": [], "endorsements": []}', None),
    (b"not json", "cannot read its keys"),
    (b"[1, 2]", "not a JSON object"),
    (b"{" + b" " * (300 * 1024) + b"}", "over 262144 bytes")], ids=["keys", "not json", "a list", "too big"])
async def test_reading_a_peers_keys_refuses_what_is_not_a_small_json_object(aiohttp_server, pair, body, error):
    """``GET /federation/v1/keys`` is not signed: what it answers is read with a bound, and only as an object."""
    from aiohttp import web

    from adapters.hub_http import HttpTransport
    from adapters.transport import Peer
    from node.errors import PeerError
    async def keys(request):
        return web.Response(body=body)
    app = web.Application()
    app.router.add_get("/federation/v1/keys", keys)
    server = await aiohttp_server(app)
    transport = HttpTransport(pair[0].keys, lambda key_id: None)
    try:
        if error is None:
            assert (await transport.fetch_keys(Peer("nasional", str(server.make_url("")))))["node_id"] == "nasional"
        else:
            with pytest.raises(PeerError, match=error):
                await transport.fetch_keys(Peer("nasional", str(server.make_url(""))))
    finally:
        await transport.close()
