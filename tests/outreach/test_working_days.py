"""Dutch working days: Monday to Friday, not on a Dutch public holiday; counted both ways."""

from __future__ import annotations

import datetime as dt

import pytest

from outreach.rules import add_working_days, is_working_day, working_days_between

D = dt.date


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (D(2026, 12, 7), D(2026, 12, 7), 0),  # the same day
        (D(2026, 12, 7), D(2026, 12, 8), 1),  # Monday -> Tuesday
        (D(2026, 12, 11), D(2026, 12, 14), 1),  # Friday -> Monday: the weekend does not count
        (D(2026, 12, 11), D(2026, 12, 13), 0),  # Friday -> Sunday: no working day in between
        (D(2026, 12, 12), D(2026, 12, 14), 1),  # Saturday -> Monday
        (D(2026, 4, 24), D(2026, 4, 28), 1),  # Friday -> Tuesday over Koningsdag (Mon 27 April)
        (D(2026, 4, 24), D(2026, 4, 27), 0),  # Friday -> Koningsdag itself
        (D(2026, 12, 24), D(2026, 12, 28), 1),  # Christmas (Fri 25) and Boxing Day (Sat 26)
        (D(2026, 12, 23), D(2027, 1, 4), 6),  # over Christmas and New Year's Day (Fri 1 Jan)
        (D(2026, 12, 7), D(2026, 12, 21), 10),  # two whole weeks
        # The year 2026: 261 weekdays, 7 of them public holidays (Good Friday included).
        (D(2025, 12, 31), D(2026, 12, 31), 254),
    ],
)
def test_working_days_between_counts_dutch_working_days(
    start: dt.date, end: dt.date, days: int
) -> None:
    assert working_days_between(start, end) == days
    assert working_days_between(end, start) == -days  # late instead of early


def test_it_counts_what_is_working_day_says() -> None:
    start = D(2025, 11, 3)
    for length in range(0, 800, 7):
        end = start + dt.timedelta(days=length)
        slow = sum(is_working_day(start + dt.timedelta(days=i)) for i in range(1, length + 1))
        assert working_days_between(start, end) == slow, end


@pytest.mark.parametrize("start", [D(2026, 4, 23), D(2026, 4, 25), D(2026, 12, 24), D(2027, 5, 5)])
@pytest.mark.parametrize("days", [0, 1, 2, 3, 5, 14, 20, 60])
def test_it_undoes_add_working_days(start: dt.date, days: int) -> None:
    assert working_days_between(start, add_working_days(start, days)) == days
