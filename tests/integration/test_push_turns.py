"""The hub takes at most ``PUSHES_AT_ONCE`` pushes in at once (adapters.http.federation), on the real hub app
over loopback, pushed to by kab-paser's real transport. The hub's receive is held until the test lets it go,
so that pushes pile up as they do when many districts come back at once."""
from __future__ import annotations

import asyncio
import secrets
import threading
import time
from urllib.parse import urlsplit

import orjson
import pytest

from adapters import httpsig
from adapters.http import federation
from adapters.http.app import build_app
from adapters.hub_http import HttpTransport
from adapters.transport import Peer
from node.errors import PeerError
from node.federation import KeyDirectory


@pytest.fixture
async def held_hub(aiohttp_server, pair, request, monkeypatch):
    """(kab-paser's transport, the hub's peer, the pushes the hub took in, the event that lets its receives
    go on). Parametrized (indirect), the hub's ``Turns`` are made with those arguments."""
    district, hub = pair
    app = build_app(hub)
    if getattr(request, "param", None) is not None:
        app["push_turns"] = federation.Turns(**request.param)
    receiver, release, taken = app["receiver"], threading.Event(), []
    receive, body_checked = receiver.receive, httpsig.verify_request_body

    def counted(headers, body):   # (a push is taken in once its body is read)
        taken.append(body)
        return body_checked(headers, body)

    def held_receive(*args, **kwargs):
        release.wait(20)
        return receive(*args, **kwargs)
    monkeypatch.setattr(httpsig, "verify_request_body", counted)
    receiver.receive = held_receive
    server = await aiohttp_server(app, port=urlsplit(district.settings.hub.url).port)
    transport = HttpTransport(district.keys, KeyDirectory(district.storage, district.keys).resolve, attempts=1)
    yield transport, Peer("nasional", district.settings.hub.url), taken, release
    release.set()
    await transport.close()
    await server.close()


async def _until(check, seconds=5.0):
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)


async def test_pushes_beyond_the_hubs_turns_wait_until_one_ends(held_hub):
    transport, peer, taken, release = held_hub
    pushes = [asyncio.ensure_future(transport.push(peer, 0, [])) for _ in range(federation.PUSHES_AT_ONCE + 2)]
    await _until(lambda: len(taken) >= federation.PUSHES_AT_ONCE)
    await asyncio.sleep(0.3)                          # time for another to be taken in, were it let in
    assert len(taken) == federation.PUSHES_AT_ONCE
    release.set()
    results = await asyncio.gather(*pushes)
    assert len(taken) == len(pushes) and all(r.rejected == () for r in results)


@pytest.mark.parametrize("held_hub", [{"wait_s": 0.3}], indirect=True)
async def test_a_push_that_waits_too_long_for_a_turn_is_answered_busy_and_retried_later(held_hub):
    transport, peer, taken, release = held_hub
    pushes = [asyncio.ensure_future(transport.push(peer, 0, [])) for _ in range(federation.PUSHES_AT_ONCE + 2)]
    await _until(lambda: sum(p.done() for p in pushes) >= 2)
    release.set()
    results = await asyncio.gather(*pushes, return_exceptions=True)
    busy = [r for r in results if isinstance(r, PeerError)]
    assert len(busy) == 2 and len(taken) == federation.PUSHES_AT_ONCE
    # a signed 503: the sender verified the answer, and retries it later (it dead-letters nothing)
    assert all(e.peer_status == 503 and e.retryable and not e.refused and "busy" in str(e) for e in busy)


@pytest.mark.parametrize("held_hub", [{"at_once": 2, "waiting": 1, "wait_s": 30}], indirect=True)
async def test_beyond_the_pushes_allowed_to_wait_a_push_is_answered_busy_at_once(held_hub):
    transport, peer, taken, release = held_hub
    pushes = [asyncio.ensure_future(transport.push(peer, 0, [])) for _ in range(5)]
    await _until(lambda: sum(p.done() for p in pushes) >= 2 and len(taken) >= 2)   # long before 30 s
    await asyncio.sleep(0.3)                          # time for the one waiting to be taken in, were it let in
    busy = [p.exception() for p in pushes if p.done()]
    assert len(busy) == 2 and len(taken) == 2
    assert all(isinstance(e, PeerError) and e.peer_status == 503 and "wait" in str(e) for e in busy)
    release.set()
    assert len([r for r in await asyncio.gather(*pushes, return_exceptions=True) if not isinstance(r, Exception)]) == 3


@pytest.mark.parametrize("held_hub", [{"at_once": 1, "wait_s": 5}], indirect=True)
async def test_a_push_whose_body_stops_coming_loses_its_turn_and_is_answered_408(held_hub, pair, monkeypatch):
    """A signed push whose body stops half-way holds the hub's only turn for ``BODY_WAIT_S``, not for as long
    as its connection stays open: then it is answered 408, and the push waiting behind it is taken in."""
    monkeypatch.setattr(federation, "BODY_WAIT_S", 0.5)
    transport, peer, taken, release = held_hub
    district = pair[0]
    url = f"{peer.url.rstrip('/')}/federation/v1/events"
    body = orjson.dumps({"after": 0, "items": []})
    headers = httpsig.sign_request("POST", url, {"Content-Type": "application/json"}, body,
                                   key_id=district.keys.signing_key_id, private_key=district.keys.signing_key,
                                   now=time.time(), nonce=secrets.token_urlsafe(16))
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Length: {len(body)}\r\n"
                 f"{head}\r\n".encode() + body[:5])   # and then nothing more
    await writer.drain()
    await asyncio.sleep(0.1)                          # the stalled push takes the turn first
    release.set()
    result = await transport.push(peer, 0, [])        # waits behind it, then is taken in
    assert result.rejected == () and len(taken) == 1
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode().lower()
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    problem = orjson.loads(await reader.readexactly(length))
    writer.close()
    assert head.startswith("http/1.1 408") and "application/problem+json" in head
    assert "connection: close" in head   # the rest of the body may still come: not on this connection
    assert problem["status"] == 408 and "did not arrive within 0.5 s" in problem["detail"]


async def test_a_push_over_the_body_limit_gets_a_signed_413(pair, aiohttp_client, signed_post):
    """Before, aiohttp's own 413 went out unsigned: the sender could not verify it, and took it for an outage."""
    from schemas.events import BATCH_MAX_BYTES
    district, hub = pair
    body = b'{"after": 0, "items": [], "pad": "' + b"x" * BATCH_MAX_BYTES + b'"}'
    resp = await signed_post(await aiohttp_client(build_app(hub)), district, "/federation/v1/events", body)
    assert resp.status == 413 and resp.content_type == "application/problem+json"
    assert "Signature" in resp.headers and "Signature-Input" in resp.headers


async def test_a_push_whose_sender_leaves_mid_body_is_one_warning_not_a_traceback(pair, aiohttp_client, caplog):
    """A district whose request timed out while the hub was busy closes the connection mid-body. Before, the
    hub logged "unhandled error" with a ConnectionResetError traceback (which the soak counts as a failure)."""
    district, hub = pair
    client = await aiohttp_client(build_app(hub))
    url = str(client.make_url("/federation/v1/events"))
    body = orjson.dumps({"after": 0, "events": []}) + b" " * 200_000
    headers = httpsig.sign_request("POST", url, {"Content-Type": "application/json"}, body,
                                   key_id=district.keys.signing_key_id, private_key=district.keys.signing_key,
                                   now=time.time(), nonce=secrets.token_urlsafe(16))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = f"POST /federation/v1/events HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\nContent-Length: {len(body)}\r\n"
    writer.write((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body[:1000])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    logged = []
    for _ in range(100):
        logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "adapters.http.problems"]
        if logged:
            break
        await asyncio.sleep(0.05)
    assert logged and all(level == "WARNING" and "went away" in text for level, text in logged), logged
