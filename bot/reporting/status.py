"""``reclambot status``: is the bot healthy? Last poll, open complaints, outbox, quarantine,
last errors, in one readable table."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.states import (
    IN_PROGRESS,
    QUARANTINED,
    UNSENT,
    ComplaintStatus,
    InboundState,
    OutboxStatus,
    state_label,
)
from bot.store.models import Complaint, Inbound, Outbox, Setting

if TYPE_CHECKING:
    from bot.app import App

MAX_ERRORS = 10
FILING_KEY = "filing_failures"
#: Passes in a row that failed to file into one folder before the director is told.
REPORT_FILING_AFTER = 3


def record_setting(app: App, key: str, value: str) -> None:
    """Keep one small value (last poll...) in the database."""
    with app.transaction() as session:
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value))
        else:
            row.value = value


def record_error(app: App, message: str) -> None:
    """Remember a failure for ``reclambot status`` (the last ten are kept)."""
    try:
        with app.transaction() as session:
            row = session.get(Setting, "last_errors")
            errors = json.loads(row.value) if row else []
            errors = [[app.clock().isoformat(timespec="seconds"), message[:300]], *errors]
            value = json.dumps(errors[:MAX_ERRORS], ensure_ascii=False)
            if row is None:
                session.add(Setting(key="last_errors", value=value))
            else:
                row.value = value
    except Exception:  # the database may be what failed: the log has it anyway
        pass


def filing_failures(session: Session) -> dict[str, dict[str, Any]]:
    """Folders the bot currently fails to file into: ``{folder: {count, since, last, error}}``."""
    row = session.get(Setting, FILING_KEY)
    return json.loads(row.value) if row is not None else {}


def repeated_filing_failures(session: Session) -> list[dict[str, Any]]:
    """The failures to report: the same folder failed ``REPORT_FILING_AFTER`` passes or more."""
    return [{**detail, "folder": folder, "since": dt.datetime.fromisoformat(detail["since"])}
            for folder, detail in sorted(filing_failures(session).items())
            if detail.get("count", 0) >= REPORT_FILING_AFTER]


class FilingLog:
    """Failures to file handled messages into their folders, kept while they last.

    Read once per pass and written only when something changes, so that a pass whose
    filing works costs no write. A folder that works again is forgotten.
    """

    def __init__(self, app: App, failures: dict[str, dict[str, Any]]) -> None:
        """``failures``: as :func:`filing_failures` read them, with the pass's first reads."""
        self.app = app
        self.failures = failures
        self._reported: set[str] = set()  # failed already in this pass: counted once

    def failed(self, folder: str, error: str, messages: int) -> None:
        """Filing ``messages`` into ``folder`` failed with ``error``."""
        now = self.app.clock().isoformat(timespec="seconds")
        detail = self.failures.setdefault(folder, {"count": 0, "since": now})
        if folder not in self._reported:
            detail["count"] = int(detail.get("count", 0)) + 1
            self._reported.add(folder)
        detail.update(last=now, error=error[:300], messages=messages)
        self._save()

    def succeeded(self, folder: str) -> None:
        """Filing into ``folder`` worked: its failures, if any, are over."""
        if folder in self.failures and folder not in self._reported:
            del self.failures[folder]
            self._save()

    def _save(self) -> None:
        record_setting(self.app, FILING_KEY, json.dumps(self.failures, ensure_ascii=False))


def status_lines(app: App) -> list[str]:
    """The report, as lines of text."""
    from bot.core.clock import local
    from bot.reporting.export import cell
    from bot.store.deadlines import next_deadline

    today = local(app.clock()).date()
    with app.sessions() as session:
        last_poll = session.get(Setting, "last_poll")
        errors_row = session.get(Setting, "last_errors")
        complaints = session.scalars(
            select(Complaint).where(Complaint.status.in_(IN_PROGRESS))
            .order_by(Complaint.year, Complaint.sequence)).all()
        outbox = dict(session.execute(
            select(Outbox.status, func.count(Outbox.id)).group_by(Outbox.status)).all())
        in_quarantine = (Inbound.action.in_(QUARANTINED),
                         Inbound.state != InboundState.RETRIED)
        quarantined = session.scalars(
            select(Inbound).where(*in_quarantine).order_by(Inbound.id.desc()).limit(5)).all()
        quarantine_count = session.scalar(select(func.count(Inbound.id)).where(*in_quarantine))
        polled = cell(dt.datetime.fromisoformat(last_poll.value)) if last_poll else "jamais"
        lines = [f"{'Dernière relève':<24}{polled}"]
        lines.append(f"{'Réclamations ouvertes':<24}{len(complaints)}")
        for c in complaints:
            deadline = next_deadline(c, app.rulebook)
            due = f"{deadline[0]} avant le {deadline[1]:%d/%m/%Y}" if deadline else "—"
            late = "  EN RETARD" if deadline and deadline[1] < today else ""
            lines.append(f"  {c.number:<16}{state_label(ComplaintStatus, c.status):<10}"
                         f"{due}{late}")
        lines.append(f"{'Envois':<24}" + (", ".join(
            f"{state_label(OutboxStatus, k)} {v}" for k, v in sorted(outbox.items())) or "aucun"))
        lines.append(f"{'Quarantaine':<24}{quarantine_count or 0}")
        for row in quarantined:
            reason = row.rules[0]["reason"] if row.rules else row.error
            lines.append(f"  {cell(row.processed_at)}  uid {row.uid}: {reason[:70]}")
        unfiled = filing_failures(session)
        errors = json.loads(errors_row.value) if errors_row else []
        lines.append(f"{'Classement en échec':<24}{len(unfiled) or 'aucun'}")
        for folder, detail in sorted(unfiled.items()):
            since = cell(dt.datetime.fromisoformat(detail["since"]))
            lines.append(f"  « {folder} » : {detail['count']} relève(s) depuis le {since}, "
                         f"{detail.get('messages', 0)} message(s) en attente — "
                         f"{str(detail.get('error', ''))[:70]}")
        lines.append(f"{'Dernières erreurs':<24}{len(errors) or 'aucune'}")
        for when, message in errors[:5]:
            lines.append(f"  {when}  {message[:90]}")
    return lines


def unsent(session: Session) -> list[Outbox]:
    """The emails that have not left, yet or for good, oldest first (``reclambot outbox``)."""
    return list(session.scalars(select(Outbox).where(Outbox.status.in_(UNSENT))
                                .order_by(Outbox.id)))
