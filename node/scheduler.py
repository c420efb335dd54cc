"""Periodic jobs, run by APScheduler inside the node's event loop.

- wake: nudge every transmission loop (new work, or a backoff that expired);
- pull: catch up from each peer's queue after our cursor (and, on a district,
  refresh the copy of the hub's directory first);
- anti_entropy: compare digests with each peer and repair (node.anti_entropy);
- prune: forget delivered outbox rows older than the retention.
"""
from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


def build_scheduler(node, sync, refresh_directory, anti_entropy=None) -> AsyncIOScheduler:
    cfg = node.settings.sync
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})

    async def wake():
        await sync.refresh_peers()
        sync.wake()

    async def pull():
        if refresh_directory is not None:
            await refresh_directory()
        await sync.pull_all()

    scheduler.add_job(wake, "interval", seconds=cfg.wake_interval_s, id="wake")
    scheduler.add_job(pull, "interval", seconds=cfg.pull_interval_s, id="pull")
    if anti_entropy is not None:
        scheduler.add_job(anti_entropy.run_all, "interval", seconds=cfg.anti_entropy_interval_s, id="anti_entropy")
    return scheduler
