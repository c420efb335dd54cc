"""Runs blocking storage work off the event loop.

SQLite allows one writer at a time, so a SQLite node uses one database thread
(writes queue there instead of fighting over the lock); PostgreSQL gets a few.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class DbRunner:
    def __init__(self, threads: int):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="simpul-db")

    async def __call__(self, fn: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
