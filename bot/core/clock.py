"""Time, in one place: the stored form (naive UTC), Paris time, and dates as French
readers write them. The bottom of the house: it imports nothing from ``bot``."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)
_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def utcnow() -> dt.datetime:
    """Current time as naive UTC, the form every datetime is stored in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def local(moment: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) datetime in Paris time."""
    return moment.replace(tzinfo=dt.UTC).astimezone(PARIS)


def date_fr(value: dt.date | dt.datetime | None) -> str:
    """``mardi 29 décembre 2026``: dates as a French reader expects them."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = local(value).date()
    day = "1er" if value.day == 1 else str(value.day)  # «1er décembre», as French writes it
    return f"{_DAYS[value.weekday()]} {day} {_MONTHS[value.month - 1]} {value.year}"


def datetime_fr(value: dt.datetime | None) -> str:
    """``25/11/2026 à 10 h 15`` (Paris time)."""
    if value is None:
        return ""
    moment = local(value)
    return f"{moment:%d/%m/%Y} à {moment.hour} h {moment:%M}"
