"""Builds a node's aiohttp application: API, federation, metrics, console, jobs."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from adapters.http import admin_api, api, conflicts_api, console, federation, identity_api
from adapters.http.hub_keys import HubKeys
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
from schemas.events import BATCH_MAX_BYTES

log = logging.getLogger(__name__)


def build_app(node: Node) -> web.Application:
    s = node.settings
    app = web.Application(middlewares=[problem_middleware], client_max_size=max(s.max_body_bytes, BATCH_MAX_BYTES))
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
    app["push_turns"] = federation.Turns()
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

    hub_keys = HubKeys(node, transport, keydir)
    transport.learn_key = hub_keys.learn
    app["learn_hub_key"] = hub_keys.learn_for_request
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
        app["checkpointer"] = node.storage.checkpoint_in_background()
        if node.role == "hub":   # (its start-up, off the first large push's way)
            receiver.worker.warm()
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
        if app["checkpointer"] is not None:
            app["checkpointer"].stop()
        receiver.worker.close()
        node.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
