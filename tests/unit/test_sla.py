from datetime import date

import pytest

from node.sla import sla_state, working_days_between

MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 3, d) for d in range(2, 9))
NEXT_MON, NEXT_TUE, NEXT_WED = date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 11)


@pytest.mark.parametrize("start,end,holidays,expected", [
    (MON, MON, (), 0),
    (MON, TUE, (), 1),
    (MON, THU, (), 3),
    (MON, FRI, (), 4),
    (FRI, SAT, (), 0),
    (FRI, SUN, (), 0),
    (FRI, NEXT_MON, (), 1),
    (SAT, NEXT_MON, (), 1),
    (MON, NEXT_MON, (), 5),
    (MON, THU, (WED,), 2),          # a holiday does not count
    (TUE, MON, (), 0),              # end before start
])
def test_working_days_between(start, end, holidays, expected):
    assert working_days_between(start, end, holidays) == expected


@pytest.mark.parametrize("status,filed,disp,followup,today,holidays,rule,state,elapsed", [
    # verify and forward: <= 3 working days from filing
    ("received", MON, None, False, THU, (), "verify_forward", "on_time", 3),
    ("received", MON, None, False, FRI, (), "verify_forward", "overdue", 4),
    ("verified", THU, None, False, NEXT_TUE, (), "verify_forward", "on_time", 3),
    ("verified", THU, None, False, NEXT_WED, (), "verify_forward", "overdue", 4),
    ("received", MON, None, False, FRI, (WED,), "verify_forward", "on_time", 3),
    # first follow-up: <= 5 working days from disposition
    ("dispositioned", MON, MON, False, NEXT_MON, (), "first_follow_up", "on_time", 5),
    ("dispositioned", MON, MON, False, NEXT_TUE, (), "first_follow_up", "overdue", 6),
    ("in_progress", MON, MON, False, NEXT_TUE, (), "first_follow_up", "overdue", 6),
    ("dispositioned", MON, None, False, NEXT_TUE, (), "first_follow_up", "none", 0),
    # followed up (or any other status): no deadline here
    ("in_progress", MON, MON, True, NEXT_WED, (), None, "none", 0),
    ("followed_up", MON, MON, True, NEXT_WED, (), None, "none", 0),
    ("closed", MON, MON, True, NEXT_WED, (), None, "none", 0),
    ("returned", MON, None, False, NEXT_WED, (), None, "none", 0),
])
def test_sla_state(status, filed, disp, followup, today, holidays, rule, state, elapsed):
    got = sla_state(status, filed_on=filed, dispositioned_on=disp, has_followup=followup, today=today,
                    holidays=holidays)
    assert (got.rule, got.state, got.elapsed) == (rule, state, elapsed)
