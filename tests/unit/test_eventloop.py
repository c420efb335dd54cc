"""node.eventloop: which loop ``simpul run`` serves on. uvloop is a dependency on Linux, so it is imported
plainly: an install without it fails here instead of skipping."""
import asyncio
import sys

import pytest
import uvloop

from node.errors import ConfigError
from node.eventloop import new_loop


def _kind(choice):
    loop, kind = new_loop(choice)
    try:
        return type(loop), kind
    finally:
        loop.close()


def test_auto_and_uvloop_give_uvloop_where_it_is_installed():
    assert _kind("auto") == (uvloop.Loop, "uvloop")
    assert _kind("uvloop") == (uvloop.Loop, "uvloop")


def test_asyncio_gives_the_standard_loop():
    loop_type, kind = _kind("asyncio")
    assert kind == "asyncio" and not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)   # import uvloop now raises ImportError
    assert _kind("auto")[1] == "asyncio"
    with pytest.raises(ConfigError, match="event_loop: uvloop is not installed"):
        new_loop("uvloop")


def test_an_unknown_choice_is_a_config_error():
    with pytest.raises(ConfigError, match="event_loop: give one of auto, uvloop, asyncio"):
        new_loop("libev")
