"""Ticket ids: 32 hex digits, as uuid4().hex was, but ordered by time (the UUIDv7 layout, RFC 9562).

A ticket id is a key in several indexes (tickets, the events' ticket index,
the origin's private data). Random ids put every new ticket on a different
page of each of them, so every commit wrote a page per index per ticket;
ids that grow with time append to the same few pages. 48 bits of Unix
milliseconds, then 74 random bits: as unguessable as before for anyone
without the filing time, and unique without coordination.
"""
from __future__ import annotations

import os
import time


def ticket_id() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return f"{value:032x}"
