"""The one transport interface the sync engine talks to.

A transport moves batches of signed events between this node and one peer.
The native hub protocol over HTTP (``adapters.hub_http``) is the first
implementation; Open311, offline bundle files and a LAPOR!-API mapping fit the
same shape: ``push`` hands over a bounded batch and learns what the peer
accepted, ``pull`` fetches what the peer has queued for us after a cursor, and
``fetch_directory`` / ``digests`` are optional (an adapter that cannot offer
them raises ``NotImplementedError``). Failures are ``PeerError`` with
``retryable`` set according to node.backoff's policy.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.events import Event


@dataclass(frozen=True)
class Peer:
    node_id: str
    url: str


@dataclass(frozen=True)
class PushResult:
    accepted: int
    duplicates: int
    rejected: tuple[tuple[str, str], ...]   # (event id, reason)
    cursor: int                             # the peer's checkpoint of our queue


@dataclass(frozen=True)
class PullResult:
    items: tuple[tuple[int, dict], ...]     # (queue position, wire event) -- verified by the receiver
    last: int                               # the peer's newest queue position for us
    more: bool = False                      # the answer was cut at BATCH_EVENTS_MAX_BYTES: ask again


class Transport(Protocol):
    async def push(self, peer: Peer, after: int, items: Sequence[tuple[int, Event]]) -> PushResult: ...

    async def pull(self, peer: Peer, after: int, limit: int) -> PullResult: ...

    async def fetch_directory(self, peer: Peer) -> dict: ...

    async def digests(self, peer: Peer, request: dict) -> dict: ...

    async def close(self) -> None: ...
