"""The hybrid logical clock: what it observes of received events, and what it stamps next."""
import random

from node.clock import MAX_AHEAD_MS, HybridClock, format_hlc, parse_hlc

WALL = 1_764_270_000_000


def test_observing_a_batch_at_once_leaves_the_clock_where_observing_each_event_does():
    rng = random.Random(7)
    for _ in range(200):
        values = [format_hlc(WALL + rng.randint(-5_000, MAX_AHEAD_MS + 5_000), rng.randint(0, 9999))
                  for _ in range(rng.randint(0, 6))]
        one_by_one, at_once = HybridClock(lambda: WALL), HybridClock(lambda: WALL)
        for v in values:
            one_by_one.observe(v)
        at_once.observe_all(iter(values))
        trusted = [parse_hlc(v) for v in values if parse_hlc(v)[0] <= WALL + MAX_AHEAD_MS]   # (the rule, restated)
        assert at_once._last == max(trusted, default=(0, 0))
        assert at_once.tick() == one_by_one.tick()


def test_a_batch_observed_skips_the_values_too_far_ahead_and_keeps_the_latest_of_the_others():
    clock = HybridClock(lambda: WALL)
    ahead = format_hlc(WALL + MAX_AHEAD_MS + 1, 0)
    latest = format_hlc(WALL + MAX_AHEAD_MS, 9999)      # (the last value still trusted)
    clock.observe_all([format_hlc(WALL + 10, 3), ahead, latest])
    assert clock.tick() == format_hlc(WALL + MAX_AHEAD_MS + 1, 0)   # (past the counter's width: the next ms)
    clock.observe_all([])
    assert clock.tick() == format_hlc(WALL + MAX_AHEAD_MS + 1, 1)
