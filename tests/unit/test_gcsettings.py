"""A serving node's garbage-collector settings (node.gcsettings)."""
from __future__ import annotations

import gc

import pytest

from node import gcsettings


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_for_serving_freezes_what_is_alive_and_collects_less_often(restore_gc):
    before = gc.get_freeze_count()
    gcsettings.for_serving()
    assert gc.get_freeze_count() > before            # the objects alive at start-up: never walked again
    assert gc.get_threshold() == gcsettings.THRESHOLDS
    assert gc.get_threshold()[0] > 700               # CPython's default young threshold


def test_cycles_made_after_it_are_still_collected_without_being_asked(restore_gc):
    gcsettings.for_serving()
    collected = []

    def seen(phase, info):
        if phase == "stop":
            collected.append(info["collected"])
    gc.callbacks.append(seen)
    try:
        for _ in range(3 * gcsettings.THRESHOLDS[0]):   # more cycles than a young pass waits for
            a, b = [], []
            a.append(b)
            b.append(a)
        del a, b
    finally:
        gc.callbacks.remove(seen)
    assert collected and sum(collected) > 0
