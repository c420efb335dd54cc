"""Periodic jobs, run by APScheduler inside the node's event loop.

- wake: nudge the transmission loops with something to send (work another
  process queued, or a backoff that expired);
- pull: catch up from each peer's queue after our cursor (and, on a district,
  refresh the copy of the hub's directory first);
- anti_entropy: compare digests with each peer and repair (node.anti_entropy);
- prune: forget outbox rows that their peer acknowledged and that are older
  than ``sync.outbox_retention_s`` (pull only ever needs recent ones).

A job cancelled because the node is shutting down ends quietly.
"""
from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


def _quiet_on_shutdown(job):
    async def run():
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("job %s cancelled by shutdown", job.__name__)
    run.__name__ = job.__name__
    return run


def build_scheduler(node, sync, refresh_directory, anti_entropy) -> AsyncIOScheduler:
    cfg = node.settings.sync
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})

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

    jobs = [(wake, cfg.wake_interval_s, "wake"), (pull, cfg.pull_interval_s, "pull"),
            (anti_entropy.run_all, cfg.anti_entropy_interval_s, "anti_entropy"), (prune, 3600.0, "prune")]
    for job, every, name in jobs:
        scheduler.add_job(_quiet_on_shutdown(job), "interval", seconds=every, id=name)
    return scheduler
