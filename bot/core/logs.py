"""Logging: readable lines by default, JSON lines on request (``[logging] format = "json"``).

Every record that concerns a complaint carries its reference (``ticket``), taken from the
message; the messages themselves never carry personal data at INFO.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s%(org_part)s %(name)s%(ticket_part)s: %(message)s"

#: The organisation the current thread works for (``reclambot run --organisations``).
_context = threading.local()


def work_for(slug: str) -> None:
    """Tag this thread's log lines with organisation ``slug``."""
    _context.organisation = slug


def reference_pattern(complaint: str = "REC", contact: str = "CT", ticket: str = "TK"
                      ) -> re.Pattern[str]:
    """A complaint number or a contact's or ticket's reference, with these prefixes."""
    c, t, k = (re.escape(p) for p in (complaint, contact, ticket))
    return re.compile(rf"\b(?:{c}-\d{{4}}-\d{{4,}}|{t}-[A-Z0-9]{{8}}|{k}-[A-Z0-9]{{8}})\b")


class TicketFilter(logging.Filter):
    """Adds ``record.ticket``: the first complaint, contact or ticket reference in the line.

    The prefixes are the rulebook's (``[references]``), set by :func:`use_references`
    once it is loaded; until then, the shipped ones.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pattern = reference_pattern()

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.pattern.search(record.getMessage())
        # Extra attributes of the record, as logging's documentation describes them.
        ticket = found.group(0) if found else ""
        record.ticket = ticket
        record.ticket_part = f" [{ticket}]" if found else ""
        organisation = getattr(_context, "organisation", "")
        record.organisation = organisation
        record.org_part = f" {{{organisation}}}" if organisation else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, ticket, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "ticket": getattr(record, "ticket", ""),
            "organisation": getattr(record, "organisation", ""),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when configured."""

    # Embedding code (and test runners) swap sys.stderr; a handler holding the old one
    # would write to a closed file.
    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(fmt: str = "text", level: int | str = logging.INFO) -> None:
    """(Re)configure the root logger of the ``reclambot`` process."""
    handler = _StderrHandler()
    handler.addFilter(TicketFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # mail-parser warns about every part type it does not render (delivery reports...).
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    # Alembic narrates its set-up at INFO; bot.store.schema logs the migration itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Libraries that narrate their work at INFO on the operator's terminal: fontTools
    # (each glyph table of every PDF font subset), matplotlib and fpdf2 (report, export),
    # PIL. Only their warnings matter to whoever runs the bot.
    for chatty in ("fontTools", "matplotlib", "fpdf", "PIL"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def use_references(complaint: str, contact: str, ticket: str) -> None:
    """Tag log lines with references of these prefixes (the rulebook's)."""
    pattern = reference_pattern(complaint, contact, ticket)
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, TicketFilter):
                found.pattern = pattern
