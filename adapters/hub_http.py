"""The native hub protocol over HTTP (``/federation/v1/``): a Transport.

Every request is signed (RFC 9421, adapters.httpsig) with the node's current
Ed25519 key and a fresh nonce; every response must carry the peer's signature
bound to our request, or the answer is refused. Short retries use tenacity
(exponential backoff with jitter) for timeouts, 408, 429 and 5xx only.

An answer signed with a key id we do not know may come from a peer that
rotated its key: ``learn_key`` (set by the node) gets one chance to learn it,
from the peer's endorsements (node.keys), and the request is sent again once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import orjson
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from adapters import httpsig
from adapters.transport import Peer, PullResult, PushResult
from node.backoff import is_retryable_status
from node.errors import PeerError, SignatureError
from node.keys import KeyRing
from schemas.events import Event, items_json

log = logging.getLogger(__name__)
CONTENT_REFUSED = frozenset({400, 404, 409, 413, 422})
KEYS_MAX_BYTES = 256 * 1024   # a node's public keys and endorsements: a few hundred bytes per key


class HttpTransport:
    def __init__(self, keys: KeyRing, resolve_key: Callable[[str], object], *, timeout_s: float = 15.0,
                 attempts: int = 3, initial_s: float = 0.2, now: Callable[[], float] = time.time):
        self.keys = keys
        self.resolve_key = resolve_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.initial_s = initial_s
        self.now = now
        self.learn_key: Callable[[Peer, str], Awaitable[bool]] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _once(self, method: str, url: str, body: bytes, peer: Peer) -> dict:
        """One signed request. Only a signed refusal of the content (CONTENT_REFUSED) is ``refused``: an
        answer that cannot be verified (a hub key we do not know yet) or a refusal of our identity (401,
        403: a clock off by minutes, an enrolment to fix) must not dead-letter a queue the peer may well
        have stored; the sync loop backs off and tries again."""
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            headers = httpsig.sign_request(method, url, headers, body, key_id=self.keys.signing_key_id,
                                           private_key=self.keys.signing_key, now=self.now(),
                                           nonce=secrets.token_urlsafe(16))
        except SignatureError as exc:   # (a URL in the directory that cannot be requested: the peer's to fix)
            raise PeerError(f"{peer.node_id}: cannot send to {url!r}: {exc}", status=None, retryable=False) from exc
        session = await self._client()
        try:
            async with session.request(method, url, data=body or None, headers=headers) as resp:
                payload = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise PeerError(f"{peer.node_id} unreachable at {url}: {exc.__class__.__name__}: {exc}",
                            status=None, retryable=True) from exc
        try:
            httpsig.verify_response(status, resp_headers, payload, request_method=method, request_url=url,
                                    request_headers=headers, resolve_key=self.resolve_key, now=self.now())
        except SignatureError as exc:
            retry = is_retryable_status(status) and status != 200
            raise PeerError(f"{peer.node_id} answered {status} without a valid signature: {exc}",
                            status=status, retryable=retry, unknown_key=getattr(exc, "key_id", None)) from exc
        if status >= 400:
            detail = payload[:300].decode("utf-8", "replace")
            raise PeerError(f"{peer.node_id} answered {status}: {detail}", status=status,
                            retryable=is_retryable_status(status), refused=status in CONTENT_REFUSED)
        try:
            return orjson.loads(payload)
        except ValueError as exc:
            raise PeerError(f"{peer.node_id} sent a body that is not JSON", status=status, retryable=True) from exc

    async def _call(self, method: str, path: str, peer: Peer, body: bytes = b"") -> dict:
        try:
            return await self._retried(method, path, peer, body)
        except PeerError as exc:
            if exc.unknown_key is None or self.learn_key is None or not await self.learn_key(peer, exc.unknown_key):
                raise
        return await self._retried(method, path, peer, body)

    async def _retried(self, method: str, path: str, peer: Peer, body: bytes) -> dict:
        url = peer.url.rstrip("/") + path
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.initial_s, max=5.0),
            retry=retry_if_exception(lambda e: isinstance(e, PeerError) and e.retryable),
            before_sleep=lambda state: log.info("retrying %s %s in %.2fs: %s", method, url, state.next_action.sleep,
                                                state.outcome.exception()), reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._once(method, url, body, peer)
        raise AssertionError("unreachable")

    async def push(self, peer: Peer, after: int, items: Sequence[tuple[int, Event]]) -> PushResult:
        body = f'{{"after":{int(after)},"items":{items_json(items)}}}'.encode()
        data = await self._call("POST", "/federation/v1/events", peer, body)
        return PushResult(accepted=int(data.get("accepted", 0)), duplicates=int(data.get("duplicates", 0)),
                          rejected=tuple((r["id"], r["reason"]) for r in data.get("rejected", [])),
                          cursor=int(data.get("cursor", 0)))

    async def pull(self, peer: Peer, after: int, limit: int) -> PullResult:
        data = await self._call("GET", f"/federation/v1/events?after={after}&limit={limit}", peer)
        return PullResult(items=tuple((int(i["pos"]), i["event"]) for i in data.get("items", [])),
                          last=int(data.get("last", 0)), more=data.get("more") is True)

    async def fetch_keys(self, peer: Peer) -> dict:
        """The peer's public keys and their endorsements (``GET /federation/v1/keys``). Not signed: an
        endorsement vouches for itself, and nothing else in the answer is trusted."""
        url = peer.url.rstrip("/") + "/federation/v1/keys"
        try:
            async with (await self._client()).get(url) as resp:
                if resp.status != 200:
                    raise PeerError(f"{peer.node_id} answered {resp.status} for its keys", status=resp.status)
                raw = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > KEYS_MAX_BYTES:
                        raise PeerError(f"{peer.node_id}: its keys at {url} are over {KEYS_MAX_BYTES} bytes",
                                        status=200)
                data = orjson.loads(bytes(raw))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise PeerError(f"{peer.node_id}: cannot read its keys at {url}: {exc.__class__.__name__}: {exc}",
                            status=None) from exc
        if not isinstance(data, dict):
            raise PeerError(f"{peer.node_id}: its keys at {url} are not a JSON object", status=200)
        return data

    async def fetch_directory(self, peer: Peer) -> dict:
        return await self._call("GET", "/federation/v1/directory", peer)

    async def digests(self, peer: Peer, request: dict) -> dict:
        return await self._call("POST", "/federation/v1/digests", peer, json.dumps(request).encode())

    async def chain(self, peer: Peer, request: dict) -> dict:
        """The hub's copy of our own chain (node.chain)."""
        return await self._call("POST", "/federation/v1/chain", peer, json.dumps(request).encode())
