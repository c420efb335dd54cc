"""The hub takes at most ``PUSHES_AT_ONCE`` pushes in at once (adapters.http.federation), on the real hub app
over loopback, pushed to by kab-paser's real transport. The hub's receive is held until the test lets it go,
so that pushes pile up as they do when many districts come back at once."""
from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit

import pytest

from adapters.http import federation
from adapters.http.app import build_app
from adapters.hub_http import HttpTransport
from adapters.transport import Peer
from node.errors import PeerError
from node.federation import KeyDirectory


@pytest.fixture
async def held_hub(aiohttp_server, pair, request):
    """(kab-paser's transport, the hub's peer, the pushes the hub took in, the event that lets its receives
    go on). Parametrized (indirect), the hub's ``Turns`` are made with those arguments."""
    district, hub = pair
    app = build_app(hub)
    if getattr(request, "param", None) is not None:
        app["push_turns"] = federation.Turns(**request.param)
    receiver, release, taken = app["receiver"], threading.Event(), []
    start, receive = receiver.start, receiver.receive

    def counted_start(sender, items):   # (a push is taken in on the event loop; a receive calls it again)
        if threading.current_thread() is threading.main_thread():
            taken.append(sender)
        return start(sender, items)

    def held_receive(*args, **kwargs):
        release.wait(20)
        return receive(*args, **kwargs)
    receiver.start, receiver.receive = counted_start, held_receive
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
