"""node.collector: what ``simpul run`` does to the garbage collector before it serves."""
from __future__ import annotations

import gc

from node import collector


def test_tune_freezes_what_exists_and_spaces_out_the_young_collections():
    saved = gc.get_threshold()
    gc.unfreeze()
    try:
        collector.tune()
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, saved[1], saved[2])
        assert gc.get_freeze_count() > 0
        assert not any(o is test_tune_freezes_what_exists_and_spaces_out_the_young_collections
                       for o in gc.get_objects())   # frozen: no collection walks it any more
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
