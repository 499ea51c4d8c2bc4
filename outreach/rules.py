"""Outreach rules: working days, priority, the contact plan, the allowed transitions."""

from __future__ import annotations

import datetime as dt
from functools import cache

import holidays

from config import Settings
from outreach.enums import CaseResult, CaseState, ContactKind, Priority
from signals.texts import Text


@cache
def _dutch_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("NL", years=year)


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday and not a Dutch public holiday (the ``holidays`` library)."""
    return day.weekday() < 5 and day not in _dutch_holidays(day.year)


@cache
def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (``start`` itself not counted).

    Cached: planning thousands of cases asks the same few dates again and again.
    """
    day = start
    while days > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            days -= 1
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """The working days after ``start`` up to and including ``end``; negative (the working
    days after ``end`` up to and including ``start``) when ``end`` comes first.

    The inverse of :func:`add_working_days`: ``working_days_between(d, add_working_days(d,
    n)) == n``. Only weekend days and holidays between two dates give 0: from Friday to the
    Sunday after it, or from Saturday back to that Friday.
    """
    if end < start:
        return -working_days_between(end, start)
    # Whole weeks at once (five weekdays each), then day by day; holidays on a weekday off.
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + dt.timedelta(days=offset)).weekday() < 5:
            count += 1
    off = {
        day
        for year in range(start.year, end.year + 1)
        for day in _dutch_holidays(year)
        if start < day <= end and day.weekday() < 5
    }
    return count - len(off)


def threatening(
    eviction_date: dt.date | None,
    end_of_supply: bool,
    crisis: bool,
    today: dt.date,
    settings: Settings,
) -> bool:
    """An announced eviction soon, an end of supply or a crisis flag from the partner."""
    soon = (
        eviction_date is not None and (eviction_date - today).days <= settings.eviction_threat_days
    )
    return soon or end_of_supply or crisis


def priority(band: str | None, threat: bool) -> Priority:
    """Threat first; then the score band; a household without a score yet is *midden*."""
    if threat:
        return Priority.SPOED
    return {"hoog": Priority.HOOG, "laag": Priority.LAAG}.get(band or "", Priority.MIDDEN)


def first_attempt_due(level: Priority, today: dt.date, settings: Settings) -> dt.date:
    days = {
        Priority.SPOED: settings.first_attempt_working_days_threat,
        Priority.HOOG: settings.first_attempt_working_days_high,
    }.get(level, settings.first_attempt_working_days)
    return add_working_days(today, days)


#: The contact plan: (kind, working days after the first attempt is due). At least four
#: attempts and always a call or a visit (Divosa: 4+ attempts reach 37%, letters only 6%).
PLANS: dict[Priority, tuple[tuple[ContactKind, int], ...]] = {
    Priority.SPOED: (
        (ContactKind.TELEFOON, 0),
        (ContactKind.HUISBEZOEK, 0),
        (ContactKind.KAARTJE, 0),
        (ContactKind.BRIEF, 1),
        (ContactKind.SMS, 2),
    ),
    Priority.HOOG: (
        (ContactKind.TELEFOON, 0),
        (ContactKind.BRIEF, 0),
        (ContactKind.HUISBEZOEK, 3),
        (ContactKind.SMS, 5),
    ),
    Priority.MIDDEN: (
        (ContactKind.BRIEF, 0),
        (ContactKind.TELEFOON, 3),
        (ContactKind.SMS, 5),
        (ContactKind.HUISBEZOEK, 8),
    ),
    Priority.LAAG: (
        (ContactKind.BRIEF, 0),
        (ContactKind.TELEFOON, 5),
        (ContactKind.SMS, 8),
        (ContactKind.HUISBEZOEK, 12),
    ),
}

#: Allowed state changes. A closed case stays closed.
TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.NIEUW: frozenset({CaseState.OPGEPAKT, CaseState.TE_BEOORDELEN, CaseState.AFGESLOTEN}),
    CaseState.TE_BEOORDELEN: frozenset({CaseState.NIEUW, CaseState.AFGESLOTEN}),
    CaseState.OPGEPAKT: frozenset({CaseState.AFGESLOTEN}),
    CaseState.AFGESLOTEN: frozenset(),
}

#: Results a case may close with before anyone picked it up: each is also the DDAS status
#: its signals get. Every other result needs contact first.
NOT_PICKED_UP_RESULTS = frozenset(
    {
        CaseResult.NIET_OPGEPAKT_ANDERE_REDEN,
        CaseResult.NIET_OPGEPAKT_HERHAALD,
        CaseResult.NIET_OPGEPAKT_ONTERECHT,
        CaseResult.GEEN_INWONER,
        CaseResult.OVERLEDEN,
        CaseResult.AL_BEKEND,
    }
)

#: The states in words (in messages; a page shows them in its language).
STATE_LABELS = {
    CaseState.NIEUW: Text("nieuw"),
    CaseState.TE_BEOORDELEN: Text("te beoordelen"),
    CaseState.OPGEPAKT: Text("opgepakt"),
    CaseState.AFGESLOTEN: Text("afgesloten"),
}
