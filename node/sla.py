"""Service-level deadlines in working days (hari kerja): one pure policy.

The published SP4N-LAPOR! rules give an admin 3 working days to verify and
forward a report, and the competent institution 5 working days for its first
follow-up (tindak lanjut). Working days are Monday to Friday minus the given
holidays. The days elapsed are the working days after the day the clock
started, up to and including today: a ticket filed on Monday is at 3 on
Thursday and overdue on Friday.

Which rule applies depends only on the ticket's status:

- ``received`` / ``verified``: the verify-and-forward clock, from filing;
- ``dispositioned`` / ``in_progress`` with no follow-up yet: the first
  follow-up clock, from the disposition;
- anything else: no deadline here (``state == "none"``).

Local rules vary; callers pass ``rules`` to change the limits.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class SlaRule:
    name: str
    statuses: frozenset[str]
    limit_days: int
    clock: str              # "filed" or "dispositioned": which date starts it
    needs_no_followup: bool = False


RULES: tuple[SlaRule, ...] = (
    SlaRule("verify_forward", frozenset({"received", "verified"}), 3, "filed"),
    SlaRule("first_follow_up", frozenset({"dispositioned", "in_progress"}), 5, "dispositioned",
            needs_no_followup=True),
)


@dataclass(frozen=True)
class SlaState:
    rule: str | None
    state: str              # "on_time", "overdue" or "none"
    elapsed: int = 0
    limit: int = 0


def working_days_between(start: date, end: date, holidays: Collection[date] = ()) -> int:
    """Working days d with start < d <= end (0 when end is not after start)."""
    days, d = 0, start
    while d < end:
        d += timedelta(days=1)
        if d.weekday() < 5 and d not in holidays:
            days += 1
    return days


def sla_state(status: str, *, filed_on: date, dispositioned_on: date | None, has_followup: bool,
              today: date, holidays: Collection[date] = (), rules: tuple[SlaRule, ...] = RULES) -> SlaState:
    for rule in rules:
        if status not in rule.statuses or (rule.needs_no_followup and has_followup):
            continue
        start = filed_on if rule.clock == "filed" else dispositioned_on
        if start is None:
            return SlaState(rule.name, "none", 0, rule.limit_days)
        elapsed = working_days_between(start, today, holidays)
        return SlaState(rule.name, "overdue" if elapsed > rule.limit_days else "on_time", elapsed, rule.limit_days)
    return SlaState(None, "none")
