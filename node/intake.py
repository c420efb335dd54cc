"""Group commit for intake: complaints filed at the same time share one transaction.

Filing one complaint alone costs a transaction and a commit, and on SQLite
those, with the statements around them, cost more than the complaint's own
work. Requests that arrive while a batch is being written wait and go
together in the next one. There is no timer: a lone request is written at
once, and under load a batch holds whatever arrived meanwhile (at most
``MAX_BATCH``), so batching adds no latency of its own.

If a batch fails as a whole for a reason other than the database being
unavailable (say, a bug that one odd complaint triggers, or a value the
database refuses to store), each of its requests is filed again alone, so that
one request cannot take the others down.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from node.complaints import Filed
from node.errors import StorageError
from schemas.complaints import ComplaintIn

log = logging.getLogger(__name__)
MAX_BATCH = 200


class IntakeQueue:
    def __init__(self, node, max_batch: int = MAX_BATCH):
        self.node = node
        self.max_batch = max_batch
        self._waiting: list[tuple[ComplaintIn, str | None, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def file(self, complaint: ComplaintIn, idempotency_key: str | None = None) -> Filed:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((complaint, idempotency_key, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                outcomes = await self.node.db(self._file, [(c, k) for c, k, _ in batch])
            except BaseException as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else StorageError("intake stopped"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, future), outcome in zip(batch, outcomes):
                if future.done():  # the client went away; what it filed stays filed
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _file(self, requests: Sequence[tuple[ComplaintIn, str | None]]) -> list[Filed | Exception]:
        """On the database thread."""
        try:
            return self.node.complaints.file_many(requests)
        except StorageError as exc:
            if not exc.refused or len(requests) == 1:
                raise
            log.warning("the database refused a batch of %d complaints (%s); filing them one by one",
                        len(requests), exc)
        except Exception:
            if len(requests) == 1:
                raise
            log.exception("a batch of %d complaints failed; filing them one by one", len(requests))
        outcomes: list[Filed | Exception] = []
        for request in requests:
            try:
                outcomes.append(self.node.complaints.file_many([request])[0])
            except Exception as exc:  # noqa: BLE001 -- handed to that request's handler
                outcomes.append(exc)
        return outcomes
