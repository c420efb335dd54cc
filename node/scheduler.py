"""Periodic jobs, run by APScheduler inside the node's event loop.

- wake: nudge the transmission loops with something to send (work another
  process queued, or a backoff that expired);
- pull: catch up from each peer's queue after our cursor (and, on a district,
  refresh the copy of the hub's directory first);
- anti_entropy: compare digests with each peer and repair (node.anti_entropy);
- prune: forget outbox rows that their peer acknowledged and that are older
  than ``sync.outbox_retention_s`` (pull only ever needs recent ones);
- route_waiting (hub): route the disposition queue again once the directory
  changed (node.reactions.WaitingRouter), checked at every wake;
- clock_refusals: replay the dead letters a peer refused as stamped too far
  ahead, once they no longer are (``SyncEngine.replay_clock_refusals``).

A job cancelled because the node is shutting down ends quietly. A tick that
comes while the job's last run is still going (a pull waiting on a hub that
does not answer can outlast ``sync.pull_interval_s``) is skipped by the job
itself, at debug level: APScheduler would log each one as a WARNING, which an
administrator would read as a fault of the node rather than of its peer, whose
failures the sync status and the sync log report already.
"""
from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from node.errors import SimpulError

log = logging.getLogger(__name__)


def periodic(job, name: str):
    """``job`` as a scheduler job: one run at a time, quiet on shutdown."""
    running = False

    async def run():
        nonlocal running
        if running:
            log.debug("job %s: its last run is still going; this tick is skipped", name)
            return
        running = True
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("job %s cancelled by shutdown", name)
        except SimpulError as exc:   # (a full disk, say: one line, and the next tick tries again)
            log.warning("job %s failed: %s", name, exc)
        finally:
            running = False
    return run


def build_scheduler(node, sync, refresh_directory, anti_entropy) -> AsyncIOScheduler:
    cfg = node.settings.sync
    # (max_instances 2: the second instance is ``periodic`` seeing the first still running, and returning)
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": 30})

    async def wake():
        await sync.refresh_peers()
        await sync.wake_due()

    async def pull():
        await refresh_directory()
        await sync.pull_all()

    async def prune():
        removed = await node.db(sync.prune, cfg.outbox_retention_s)
        if removed:
            log.info("pruned %d acknowledged outbox row(s)", removed)

    async def clock_refusals():
        if await node.db(sync.replay_clock_refusals):
            await sync.wake_due()

    jobs = [(wake, cfg.wake_interval_s, "wake"), (pull, cfg.pull_interval_s, "pull"),
            (anti_entropy.run_all, cfg.anti_entropy_interval_s, "anti_entropy"), (prune, 3600.0, "prune"),
            (clock_refusals, cfg.pull_interval_s, "clock_refusals")]
    if node.role == "hub":
        from node.reactions import WaitingRouter
        router = WaitingRouter(node)

        async def route_waiting():
            await node.db(router.run)
        jobs.append((route_waiting, cfg.wake_interval_s, "route_waiting"))
    for job, every, name in jobs:
        scheduler.add_job(periodic(job, name), "interval", seconds=every, id=name, name=name)
    return scheduler
