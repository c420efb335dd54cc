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


async def test_a_push_signed_with_the_hubs_new_key_is_taken_once_the_key_is_learnt(aiohttp_server, pair, caplog):
    """The hub pushes right after rotating its key, before kab-paser has asked it anything since: kab-paser
    learns the key from the hub's endorsements (``GET /federation/v1/keys`` of the real hub app) and takes
    the push. It answered 401 until its own next request to the hub learnt the key from the answer."""
    import logging
    from urllib.parse import urlsplit

    from adapters.http.app import build_app
    from adapters.hub_http import HttpTransport
    from adapters.transport import Peer
    from node.federation import KeyDirectory

    district, hub = pair
    hub_server = await aiohttp_server(build_app(hub), port=urlsplit(district.settings.hub.url).port)
    app = build_app(district)
    server = await aiohttp_server(app)
    pushing = HttpTransport(hub.keys, KeyDirectory(hub.storage, hub.keys).resolve, attempts=1)
    try:
        await app["first_contact"]                  # kab-paser's requests at start, with the hub's first key
        hub.keys.rotate("signing")
        with caplog.at_level(logging.WARNING):
            result = await pushing.push(Peer("kab-paser", str(server.make_url("")).rstrip("/")), 0, [])
    finally:
        await pushing.close()
        await server.close()                        # (before ``pair`` closes the nodes under them)
        await hub_server.close()
    assert result.accepted == 0 and not result.rejected
    assert hub_keys(district) == ["nasional#sig-1", "nasional#sig-2"]
    assert "learned nasional's new signing key nasional#sig-2" in caplog.text


async def test_a_request_signed_with_a_hub_key_nobody_endorsed_is_refused_and_asks_the_hub_once(
        aiohttp_server, pair):
    """Before it is verified, a request can make kab-paser read the hub's keys; so two in a row with a key no
    trusted key endorses cost the hub one read, and another key id within 10 s none: all are refused (401)."""
    from urllib.parse import urlsplit

    from aiohttp import web

    from adapters.http.app import build_app
    from adapters.hub_http import HttpTransport
    from adapters.transport import Peer
    from node.errors import PeerError
    from node.federation import KeyDirectory

    district, hub = pair
    reads = []

    @web.middleware
    async def count(request, handler):
        if request.path == "/federation/v1/keys":
            reads.append(request.path)
        return await handler(request)
    hub_app = build_app(hub)
    hub_app.middlewares.append(count)
    hub_server = await aiohttp_server(hub_app, port=urlsplit(district.settings.hub.url).port)
    app = build_app(district)
    server = await aiohttp_server(app)
    pushing = HttpTransport(hub.keys, KeyDirectory(hub.storage, hub.keys).resolve, attempts=1)
    refused = []
    try:
        await app["first_contact"]
        hub.keys.rotate("signing")
        hub.keys._endorsements.clear()              # served without the endorsement: nothing vouches for it
        for n in range(3):
            if n == 2:
                hub.keys.rotate("signing")          # nasional#sig-3
                hub.keys._endorsements.clear()
            with pytest.raises(PeerError) as caught:
                await pushing.push(Peer("kab-paser", str(server.make_url("")).rstrip("/")), 0, [])
            refused.append(caught.value.peer_status)
    finally:
        await pushing.close()
        await server.close()
        await hub_server.close()
    assert refused == [401, 401, 401] and reads == ["/federation/v1/keys"]
    assert hub_keys(district) == ["nasional#sig-1"]
