import pytest

from node.lifecycle import Status as S, decide

CASES = [
    # current, event, allowed, to
    (None, "created", True, S.RECEIVED),
    (S.RECEIVED, "created", False, None),
    (None, "verified", False, None),
    (S.RECEIVED, "verified", True, S.VERIFIED),
    (S.VERIFIED, "verified", False, None),
    (S.RECEIVED, "routed", True, S.DISPOSITIONED),
    (S.VERIFIED, "routed", True, S.DISPOSITIONED),
    (S.RETURNED, "routed", True, S.DISPOSITIONED),
    (S.CLOSED, "routed", False, None),
    (S.DISPOSITIONED, "accepted", True, S.IN_PROGRESS),
    (S.RECEIVED, "accepted", False, None),
    (S.DISPOSITIONED, "status_changed", True, S.IN_PROGRESS),
    (S.FOLLOWED_UP, "status_changed", False, None),
    (S.IN_PROGRESS, "followed_up", True, S.FOLLOWED_UP),
    (S.FOLLOWED_UP, "followed_up", True, S.FOLLOWED_UP),
    (S.RECEIVED, "followed_up", False, None),
    (S.DISPOSITIONED, "returned", True, S.RETURNED),
    (S.IN_PROGRESS, "returned", True, S.RETURNED),
    (S.FOLLOWED_UP, "returned", False, None),
    (S.FOLLOWED_UP, "closed", True, S.CLOSED),
    (S.RECEIVED, "closed", False, None),
    (S.DISPOSITIONED, "closed", False, None),
    (S.CLOSED, "reopened", True, S.REOPENED),
    (S.RECEIVED, "reopened", False, None),
    (S.REOPENED, "followed_up", True, S.FOLLOWED_UP),
    (S.CLOSED, "archived", True, S.ARCHIVED),
    (S.RECEIVED, "archived", True, S.ARCHIVED),
    (S.ARCHIVED, "archived", False, None),
    (S.ARCHIVED, "reopened", False, None),
    (S.ARCHIVED, "reporter_replied", False, None),
    (S.CLOSED, "reporter_replied", True, S.CLOSED),
    (S.RECEIVED, "edited", True, S.RECEIVED),
    (S.CLOSED, "edited", False, None),
    (S.IN_PROGRESS, "no_such_event", False, None),
]


@pytest.mark.parametrize("current,event,allowed,to", CASES)
def test_transition_table(current, event, allowed, to):
    decision = decide(current, event)
    assert decision.allowed is allowed
    if allowed:
        assert decision.to == to
    else:
        assert decision.reason
