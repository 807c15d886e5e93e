"""Working days of the French calendar: weekends and public holidays (``holidays`` library)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays


@lru_cache(maxsize=32)
def _french_holidays(year: int) -> frozenset[dt.date]:
    # Metropolitan France; Alsace-Moselle's two extra days are not national.
    return frozenset(holidays.country_holidays("FR", years=year).keys())


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday, and not a French public holiday."""
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (``start`` itself is day 0).

    >>> add_working_days(dt.date(2026, 12, 24), 2)   # Christmas Day, then a weekend
    datetime.date(2026, 12, 29)
    """
    day = start
    remaining = days
    while remaining > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day
