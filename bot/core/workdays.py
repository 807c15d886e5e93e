"""Working days: Monday to Friday, except the public holidays of ``rules/procedure.toml``.

French public holidays (Code du travail, art. L3133-1) are fixed dates plus days counted
from Easter Sunday, so the rules file lists them as data (``[calendar]``): an organisation
in Alsace-Moselle adds 26 December and Good Friday without a code change. Easter itself
comes from dateutil. The ``holidays`` library used to answer this; it loads all of its
279 countries to give France's 11 dates, which cost 11 MiB of a 70 MiB budget, so it is
now only the tests' reference for the default list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Calendar:
    """Which days are worked."""

    #: Public holidays on the same date every year, as (month, day).
    fixed: tuple[tuple[int, int], ...]
    #: Public holidays counted in days from Easter Sunday (1 is Easter Monday).
    easter_offsets: tuple[int, ...] = ()

    def holidays(self, year: int) -> frozenset[dt.date]:
        """The public holidays of ``year``."""
        return _holidays(self, year)

    def is_working_day(self, day: dt.date) -> bool:
        """Monday to Friday, and not a public holiday."""
        return day.weekday() < 5 and day not in _holidays(self, day.year)

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The date ``days`` working days after ``start`` (``start`` itself is day 0).

        >>> FRANCE.add_working_days(dt.date(2026, 12, 24), 2)  # Christmas, then a weekend
        datetime.date(2026, 12, 29)
        """
        day = start
        remaining = days
        while remaining > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after ``start`` up to ``end`` included (0 when the same day)."""
        days = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            days += self.is_working_day(day)
        return days

    def first_working_day(self, year: int, month: int) -> dt.date:
        """The first working day of a month."""
        day = dt.date(year, month, 1)
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day


@lru_cache(maxsize=64)
def _holidays(calendar: Calendar, year: int) -> frozenset[dt.date]:
    from dateutil.easter import easter

    days = {dt.date(year, month, day) for month, day in calendar.fixed
            if (month, day) != (2, 29) or _leap(year)}
    if calendar.easter_offsets:
        sunday = easter(year)
        days.update(sunday + dt.timedelta(days=offset) for offset in calendar.easter_offsets)
    return frozenset(days)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


#: Metropolitan France: what ``rules/procedure.toml`` ships with.
FRANCE = Calendar(
    fixed=((1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)),
    easter_offsets=(1, 39, 50),
)
