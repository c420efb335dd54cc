"""Builds a node's aiohttp application: API, federation, metrics, console, jobs."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from adapters.http import admin_api, api, conflicts_api, console, federation, identity_api
from adapters.http.metrics import metrics, registry_for
from adapters.http.problems import problem_middleware
from adapters.hub_http import HttpTransport
from node import directory
from node.core import Node
from node.errors import PeerError, SimpulError
from node.anti_entropy import AntiEntropy
from node.federation import KeyDirectory, Receiver
from node.identity import IdentityService
from node.intake import IntakeQueue
from node.reactions import district_react, hub_react
from node.scheduler import build_scheduler
from node.sync import SyncEngine

log = logging.getLogger(__name__)


def build_app(node: Node) -> web.Application:
    s = node.settings
    app = web.Application(middlewares=[problem_middleware], client_max_size=max(s.max_body_bytes, 4 * 1024 * 1024))
    app["node"] = node
    app["tokens"] = s.tokens
    app["max_body_bytes"] = s.max_body_bytes
    keydir = KeyDirectory(node.storage, node.keys)
    app["keydir"] = keydir
    identity = IdentityService(node)
    app["identity"] = identity
    react = hub_react(node) if node.role == "hub" else district_react(node, identity)
    receiver = Receiver(node, keydir, react)
    app["receiver"] = receiver
    app["intake"] = IntakeQueue(node)
    transport = HttpTransport(node.keys, keydir.resolve, timeout_s=s.sync.request_timeout_s,
                              attempts=s.sync.retry_attempts, initial_s=s.sync.retry_initial_s)

    async def refresh_directory():
        if node.role == "hub" or not s.hub.url:
            return
        from adapters.transport import Peer
        try:
            snap = await transport.fetch_directory(Peer(s.hub.node_id, s.hub.url))
        except PeerError as exc:
            log.info("directory refresh from %s failed: %s", s.hub.node_id, exc)
            return

        def store():
            with node.storage.transaction() as tx:
                directory.apply_snapshot(tx, snap, node.node_id)
        await node.db(store)
        keydir.forget()
        if await identity.reseal_pending_via(node.db):   # a page per database call
            sync.wake()

    app["refresh_directory"] = refresh_directory

    async def learn_key(peer, key_id: str) -> bool:
        """The hub answered with a signing key unknown here: learn it if a key we trust for the hub endorses
        it (a rotation, node.keys). Only the hub's: a district's new key is enrolled at the hub."""
        if node.role == "hub" or peer.node_id != s.hub.node_id or not key_id.startswith(peer.node_id + "#"):
            return False
        try:
            offered = await transport.fetch_keys(peer)
        except PeerError as exc:
            log.warning("cannot learn %s's key %s: %s", peer.node_id, key_id, exc)
            return False

        def store():
            with node.storage.transaction() as tx:
                return directory.learn_endorsed(tx, peer.node_id, offered)
        learned = await node.db(store)
        keydir.forget()
        if key_id not in learned:
            log.error("%s signed with key %s, which no key trusted here endorses: its answers stay refused "
                      "(give this node the hub's keys: simpul init --hub-keys)", peer.node_id, key_id)
            return False
        log.warning("learned %s's new signing key %s, endorsed by a key trusted here", peer.node_id, key_id)
        return True

    transport.learn_key = learn_key
    sync = SyncEngine(node, transport, receiver, refresh_directory=refresh_directory)
    app["sync"] = sync
    app["registry"] = registry_for(node)
    anti_entropy = AntiEntropy(node, transport, receiver, sync)
    app["anti_entropy"] = anti_entropy

    app.router.add_routes(api.routes)
    app.router.add_routes(admin_api.routes)
    app.router.add_routes(federation.routes)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(identity_api.routes)
    app.router.add_routes(conflicts_api.routes)
    console.setup(app)

    async def on_startup(app: web.Application) -> None:
        await sync.start()
        scheduler = build_scheduler(node, sync, refresh_directory, anti_entropy)
        scheduler.start()
        app["scheduler"] = scheduler

        async def first_contact():
            try:
                await refresh_directory()
                await sync.pull_all()
                sync.wake()
            except SimpulError as exc:
                log.warning("first contact failed: %s", exc)
        app["first_contact"] = asyncio.create_task(first_contact())

    async def on_cleanup(app: web.Application) -> None:
        app["scheduler"].shutdown(wait=False)
        app["first_contact"].cancel()
        await sync.stop()
        node.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
