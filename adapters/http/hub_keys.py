"""A district learns the hub's rotated signing key (node.keys endorsements).

The hub signs a new key with the one it replaces and serves both at
``GET /federation/v1/keys``. When something signed with a hub key id unknown
here reaches a district, the district reads that list, keeps the keys a chain
of endorsements links to a hub key it trusts (``directory.learn_endorsed``),
and checks again:

- an answer of the hub (``learn``, the transport's hook);
- a request of the hub, a push right after its rotation (``learn_for_request``).
  The request is not trusted yet, so what it can make us do is bounded:
  requests naming the same key share one attempt for a minute, and a new
  attempt starts at most every 10 s.

Only the hub's keys are learnt this way: a district's new key is enrolled at
the hub by an admin.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from adapters.transport import Peer
from node import directory
from node.errors import PeerError

log = logging.getLogger(__name__)
SHARED_S = 60.0     # requests naming one key id share an attempt this long
SPACING_S = 10.0    # at least this long between attempts started by requests


class HubKeys:
    def __init__(self, node, transport, keydir, clock: Callable[[], float] = time.monotonic):
        self.node = node
        self.transport = transport
        self.keydir = keydir
        self.clock = clock
        self._attempts: dict[str, tuple[float, asyncio.Future]] = {}
        self._last_start = float("-inf")

    def _hub(self) -> Peer | None:
        hub = self.node.settings.hub
        return None if self.node.role == "hub" or not hub.url else Peer(hub.node_id, hub.url)

    async def learn(self, peer: Peer, key_id: str) -> bool:
        """Learn ``key_id`` from ``peer`` if it is the hub's and a key trusted here endorses it."""
        hub = self._hub()
        if hub is None or peer.node_id != hub.node_id or not key_id.startswith(peer.node_id + "#"):
            return False
        try:
            offered = await self.transport.fetch_keys(peer)
        except PeerError as exc:
            log.warning("cannot learn %s's key %s: %s", peer.node_id, key_id, exc)
            return False

        def store():
            with self.node.storage.transaction() as tx:
                return directory.learn_endorsed(tx, peer.node_id, offered)
        learned = await self.node.db(store)
        self.keydir.forget()
        if key_id not in learned:
            log.error("%s signed with key %s, which no key trusted here endorses: its answers stay refused "
                      "(give this node the hub's keys: simpul init --hub-keys)", peer.node_id, key_id)
            return False
        log.warning("learned %s's new signing key %s, endorsed by a key trusted here", peer.node_id, key_id)
        return True

    async def learn_for_request(self, key_id: str) -> bool:
        """A request came signed with ``key_id``, unknown here: learn it if it is the hub's (bounded)."""
        hub = self._hub()
        if hub is None or not key_id.startswith(hub.node_id + "#"):
            return False
        now = self.clock()
        started = self._attempts.get(key_id)
        if started is None or now - started[0] > SHARED_S:
            if now - self._last_start < SPACING_S:
                return False
            if len(self._attempts) >= 64:
                self._attempts.clear()
            self._last_start = now
            started = self._attempts[key_id] = (now, asyncio.ensure_future(self.learn(hub, key_id)))
        return await asyncio.shield(started[1])
