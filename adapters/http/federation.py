"""Federation endpoints under /federation/v1/.

Every request but ``GET /keys`` must carry a valid RFC 9421 signature from an
enrolled, unrevoked node's current key, with a nonce not seen before inside
the replay window. Every answer (errors included) is signed by this node so
the caller can trust it. Rejections are logged with the reason.

At most ``PUSHES_AT_ONCE`` pushes are read, checked and stored at once. A
push's batch takes about ten times its body in memory once parsed and under
verification (500 events in a 335 KB body: 4 MB, by tracemalloc), and each
district may have ``sync.inflight`` (four) in flight: a hub that a hundred
districts reach at once after an outage would otherwise hold them all. One
district draining a backlog fills the four turns alone, so what a hub holds
then is what it holds with any number of districts. A push waits for its
turn once its signature is verified from its headers (the signature covers
the body's digest, checked when the body is read), so that only enrolled
nodes hold turns; while it waits, aiohttp buffers no more of its body than its
stream's high-water mark (128 KiB) and then stops reading the socket. One
that waits more than ``TURN_WAIT_S``, or that finds ``PUSHES_WAITING``
waiting already, is answered 503 (signed), and its sender retries later, as
after an outage.

A federation request's body must arrive within ``BODY_WAIT_S`` once the
node starts reading it (for a push, once it has its turn); one that does not
is answered 408, and its connection is closed. Without the bound, a push whose
body trickles in (or stops) would hold its turn for as long as the connection
stays open, and four of them would stop every push. The bound is four times a
sender's own timeout (``sync.request_timeout_s``, 15 s), so a sender gives up on
a slow link long before we do.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future

import orjson
from aiohttp import web

from adapters import httpsig
from adapters.http.problems import problem, query_int, unreadable
from node import chain, directory
from node.errors import (Busy, PayloadTooLarge, RequestTimeout, SignatureError, SimpulError, UnknownKeyError,
                         ValidationError)
from schemas.events import BATCH_MAX_BYTES, items_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
PUSHES_AT_ONCE = 4   # pushes read, checked and stored at once (two districts' pipelines)
PUSHES_WAITING = 16  # pushes that may wait for a turn; any more are answered 503 at once
TURN_WAIT_S = 5.0    # how long a push waits for its turn before it is answered 503 (a sender waits 15 s)
BODY_WAIT_S = 60.0   # how long a request's body may take to arrive once its turn (if any) is taken


class Turns:
    """At most ``at_once`` requests at a time, and at most ``waiting`` more waiting for a turn, each for at
    most ``wait_s``: any other is refused at once with ``Busy`` (a signed 503, which the sender retries
    later). Each request waiting holds its headers and the start of its body (aiohttp's buffer, 128 KiB),
    so a thousand districts coming back at once hold no more memory than twenty pushes."""

    def __init__(self, at_once: int = PUSHES_AT_ONCE, waiting: int = PUSHES_WAITING, wait_s: float = TURN_WAIT_S):
        self._free = asyncio.Semaphore(at_once)
        self.at_once, self.max_waiting, self.wait_s = at_once, waiting, wait_s
        self.inside = 0   # requests holding a turn or waiting for one

    @contextlib.asynccontextmanager
    async def turn(self):
        if self.inside >= self.at_once + self.max_waiting:
            raise Busy(f"{self.at_once} pushes are being stored and {self.max_waiting} wait; try again later")
        self.inside += 1
        try:
            try:
                await asyncio.wait_for(self._free.acquire(), self.wait_s)
            except asyncio.TimeoutError:
                raise Busy(f"no turn within {self.wait_s:g} s: {self.at_once} pushes are being stored; "
                           "try again later") from None
            try:
                yield
            finally:
                self._free.release()
        finally:
            self.inside -= 1


async def _authenticated(request: web.Request) -> httpsig.Verified:
    """The request's signature, verified from its headers (the body, not read yet, is checked against the
    signed Content-Digest once it is: ``httpsig.verify_request_body``). One by a key id unknown here may be
    the hub's new key: a district tries to learn it (``learn_hub_key``, node.keys endorsements) and checks
    once more."""
    try:
        return _verified(request)
    except UnknownKeyError as exc:
        learn = request.app.get("learn_hub_key")
        if learn is None or not await learn(exc.key_id):
            raise
    return _verified(request)


def _verified(request: web.Request) -> httpsig.Verified:
    verified = httpsig.verify_request(request.method, str(request.url), request.headers, None,
                                      resolve_key=request.app["keydir"].resolve, now=time.time())
    if verified.key_id.split("#", 1)[0] == request.app["node"].node_id:
        raise SignatureError("request signed with this node's own key")
    return verified


async def _spend_nonce(request: web.Request, verified: httpsig.Verified) -> None:
    node, now = request.app["node"], time.time()

    def use_nonce():
        with node.storage.transaction() as tx:
            return tx.use_nonce(verified.key_id, verified.nonce, verified.created + 2 * httpsig.REPLAY_WINDOW_S, now)
    if not await node.db(use_nonce):
        raise SignatureError(f"replayed request: nonce already used by {verified.key_id}")


def _signed(request: web.Request, status: int, data: dict, body_bytes: bytes | None = None,
            content_type: str = "application/json", refused: bool = False) -> web.Response:
    """``refused``: the answer to a request refused, whose signature may be what is wrong with it."""
    node = request.app["node"]
    body = body_bytes if body_bytes is not None else orjson.dumps(data)
    signature_input = request.headers.get("Signature-Input")
    headers = httpsig.sign_response(status, {"Content-Type": content_type}, body, request_method=request.method,
                                    request_url=str(request.url),
                                    request_signature_input=httpsig.bindable(signature_input) if refused
                                    else signature_input,
                                    key_id=node.keys.signing_key_id, private_key=node.keys.signing_key,
                                    now=time.time())
    return web.Response(status=status, body=body, headers=headers)


def federation_handler(fn, prepare=None, *, turns: str | None = None):
    """Verify the caller, run ``fn(request, sender, body)``, sign whatever comes back (JSON bytes, or an object
    to encode).

    ``prepare(request, sender, body)``, if given, runs once the request's signature is verified but
    before its nonce is spent, and its result is passed to ``fn`` as a fourth argument: a body it refuses
    costs no write (spending the nonce is one, on the database thread).
    ``turns``: the app key of the ``Turns`` the request takes a turn of, once its signature is verified
    and before its body is read."""
    async def handle(request: web.Request, verified: httpsig.Verified) -> web.Response:
        try:
            body = await asyncio.wait_for(request.read(), BODY_WAIT_S)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {BODY_WAIT_S:g} s") from None
        except web.RequestPayloadError as exc:
            raise unreadable(exc) from exc
        except web.HTTPRequestEntityTooLarge as exc:   # (else the middleware's 413, which the sender cannot verify)
            raise PayloadTooLarge(f"body over the {BATCH_MAX_BYTES:,} bytes a node reads") from exc
        httpsig.verify_request_body(request.headers, body)
        sender = verified.key_id.split("#", 1)[0]
        args = (request, sender, body) if prepare is None else (
            request, sender, body, prepare(request, sender, body))
        await _spend_nonce(request, verified)
        request.app["sync"].on_contact(sender)
        result = await fn(*args)   # an object to encode, or a body encoded already
        return _signed(request, 200, {}, result) if isinstance(result, bytes) else _signed(request, 200, result)

    async def handler(request: web.Request) -> web.Response:
        try:
            verified = await _authenticated(request)
            if turns is None:
                return await handle(request, verified)
            async with request.app[turns].turn():
                return await handle(request, verified)
        except SimpulError as exc:
            log.warning("federation %s %s refused: %s", request.method, request.path, exc)
            resp = problem(exc.status, exc.slug, exc.title, str(exc))
            answer = _signed(request, exc.status, {}, resp.body, "application/problem+json", refused=True)
            if isinstance(exc, RequestTimeout):
                answer.force_close()   # the rest of the body may still come: not on this connection
            return answer
    return handler


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except ValueError as exc:   # (orjson's JSONDecodeError, invalid UTF-8 included)
        raise ValidationError("body is not valid JSON") from exc


def _parse_push(request, sender, body) -> tuple[dict, Future | None]:
    """The batch, refused before its nonce is spent if it is not one, and at a hub its checks started in
    the worker process (``Receiver.start``)."""
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) or not isinstance(data.get("after"), int):
        raise ValidationError("body must be {'after': int, 'items': [...]}")
    if len(data["items"]) > 5000:
        raise ValidationError("at most 5000 items per batch")
    hub = request.app["node"].role == "hub"
    return data, request.app["receiver"].start(sender, body, data["items"]) if hub else None


async def _push(request, sender, body, parsed: tuple[dict, Future | None]) -> dict:
    data, started = parsed
    node, receiver = request.app["node"], request.app["receiver"]
    if node.role != "hub":   # (a batch that carries keys it does not know: a directory refresh first)
        await request.app["sync"].learn_keys(sender, data["items"])
    result = await node.db(receiver.receive, sender, data["after"], data["items"], started)
    if result.duplicates:
        # Harmless (the inbox makes delivery idempotent) but worth seeing: a push/pull race,
        # a sender that lost its checkpoint, or a double send.
        log.info("push from %s carried %d event(s) already held; ignored", sender, result.duplicates)
    for dest in result.queued_for:   # only the loops given work: a hub has hundreds of peers
        request.app["sync"].wake(dest)
    return result.to_dict()


async def _pull(request, sender, body) -> bytes:
    after, limit = query_int(request, "after", 0, 0, 2**62), query_int(request, "limit", 500, 1, 5000)
    node, chain_check = request.app["node"], request.app["sync"].chain
    if chain_check is not None and not chain_check.serves_pulls():
        # A district that has not confirmed its chain with the hub since it started (node.chain) serves
        # nothing for a while: restored from an older copy, what it queued would fork the hub's copy of its
        # chain. The hub asks again at its next pull.
        return f'{{"items":[],"last":{int(after)},"more":false}}'.encode()
    items, last, more = await node.db(request.app["receiver"].outgoing, sender, after, limit)
    return f'{{"items":{items_json(items)},"last":{int(last)},"more":{"true" if more else "false"}}}'.encode()


async def _directory(request, sender, body) -> dict:
    node = request.app["node"]
    return await node.db(node.in_read, directory.snapshot)


async def _digests(request, sender, body) -> dict:
    anti_entropy = request.app.get("anti_entropy")
    if anti_entropy is None:
        raise ValidationError("anti-entropy is not available on this node")
    return await anti_entropy.answer(sender, _json(body))


async def _chain(request, sender, body) -> bytes:
    node = request.app["node"]
    return await node.db(chain.answer, node, sender, _json(body))


routes.post("/federation/v1/events")(federation_handler(_push, prepare=_parse_push, turns="push_turns"))
routes.get("/federation/v1/events")(federation_handler(_pull))
routes.get("/federation/v1/directory")(federation_handler(_directory))
routes.post("/federation/v1/digests")(federation_handler(_digests))
routes.post("/federation/v1/chain")(federation_handler(_chain))


@routes.get("/federation/v1/keys")
async def keys(request: web.Request) -> web.Response:
    node = request.app["node"]
    return web.json_response({"node_id": node.node_id, "role": node.role,
                              "keys": [k.__dict__ for k in node.keys.public_keys()],
                              "endorsements": node.keys.endorsements()})
