"""The event loop ``simpul run`` serves on: uvloop where it is installed, else asyncio's own.

A node's intake is bound by one process's Python (the event loop and the
database thread share the GIL), so what the loop itself costs per request
comes straight off the complaints a node can take per second. uvloop (libuv
under the asyncio API) took 6% off a node's CPU per complaint in four
alternating intake runs (0.95-1.01 against 0.90-0.91 ms), with the same code
above it. It is what uvicorn's ``--loop auto`` picks too, and, like there,
``event_loop = "asyncio"`` in the config (or ``SIMPUL_EVENT_LOOP=asyncio``)
falls back to the standard loop should uvloop ever misbehave on a platform.
Tests run in-process on pytest's standard loop; acceptance tests run real
``simpul run`` processes, so both loops are exercised.
"""
from __future__ import annotations

import asyncio

from node.errors import ConfigError

CHOICES = ("auto", "uvloop", "asyncio")


def new_loop(choice: str = "auto") -> tuple[asyncio.AbstractEventLoop, str]:
    """A new event loop of the kind ``choice`` asks for, and the name of the kind it is."""
    if choice not in CHOICES:
        raise ConfigError(f"event_loop: give one of {', '.join(CHOICES)}, not {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("event_loop: uvloop is not installed (pip install uvloop)") from None
        else:
            return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"
