"""The garbage collector's settings for a serving node (``simpul run``).

A node allocates many short-lived objects per request and per event, nearly
none of them in reference cycles (a transaction breaks its own cycle when it
ends, ``adapters.storage.sql``). CPython's defaults run the young collection
every 700 allocations, and each older pass walks every object the process
holds, start-up's included. Once the application is built, a node freezes what
exists (``gc.freeze``: modules, the app, the configuration, never collected
again) and runs the young collection every ``YOUNG_THRESHOLD`` allocations.

Measured with ``scripts/bench --skip drain,catchup --concurrency 128 --intake
10000``, seven alternating pairs on a 2-core VM: 1,276 complaints/s on average
against 1,141 (higher in five pairs of seven), and 0.75 ms of node CPU per
complaint against 0.85. Peak RSS moved by a few MB: the intake node 127-139 MB
against 128-132, and in a 100,000-event drain the hub 149 MB and the district
134 MB against 144 and 134. (Before the transaction's cycle was broken, the
same settings took the hub to 195 MB, and they were not kept then.)
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000   # allocations between young collections (CPython's default: 700)


def tune() -> None:
    """Freeze the objects that exist now and space out the young collections. Call it once the node's
    application is built, before it serves."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
