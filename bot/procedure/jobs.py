"""The bot keeps time: the daily and monthly jobs of the procedure.

Every job takes the day it runs for (``--as-of``), so an operator and the tests can run it
for any day. Jobs are idempotent: a job records the day it ran in ``job_runs`` inside the
same transaction as its emails, so running a day's job twice sends nothing twice; each
reminder, alert and question is also recorded as an event, so it is never repeated.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import local
from bot.core.states import (
    IN_PROGRESS,
    QUARANTINED,
    ComplaintStatus,
    ContactStatus,
    EmailKind,
    TicketStatus,
)
from bot.outbound.compose import Email
from bot.outbound.outbox import enqueue
from bot.procedure.jobrun import JobResult, job_moment, once
from bot.procedure.purge import purge
from bot.reporting.status import repeated_filing_failures
from bot.store.db import append_row
from bot.store.deadlines import next_deadline
from bot.store.models import Complaint, Contact, Event, Inbound, JobRun, Ticket

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


def _event(session: Session, now: dt.datetime, kind: str, detail: dict[str, object], *,
           complaint: Complaint | None = None, ticket: Ticket | None = None,
           contact: Contact | None = None) -> None:
    append_row(session, Event, at=now, kind=kind, origin="scheduler", detail=detail,
               complaint_id=complaint.id if complaint else None,
               ticket_id=ticket.id if ticket else None,
               contact_id=contact.id if contact else None)


def _already(session: Session, kind: str, complaint: Complaint, key: str) -> bool:
    events = session.scalars(select(Event).where(Event.kind == kind,
                                                 Event.complaint_id == complaint.id))
    return any(e.detail.get("key") == key for e in events)


# --- The director's daily digest ------------------------------------------------------------


def remind(app: App, day: dt.date) -> JobResult:
    """One digest email: deadlines coming, deadlines passed, messages in quarantine."""
    rules = app.rulebook

    def work(session: Session, now: dt.datetime) -> dict[str, int]:
        horizon = rules.calendar.add_working_days(day, rules.time.remind_before_working_days)
        soon: list[tuple[Complaint, str, dt.date]] = []
        late: list[tuple[Complaint, str, dt.date]] = []
        open_ = session.scalars(
            select(Complaint).where(Complaint.status.in_(IN_PROGRESS))
            .order_by(Complaint.year, Complaint.sequence)
        ).all()
        for complaint in open_:
            deadline = next_deadline(complaint, rules)
            if deadline is None:
                continue
            kind, due = deadline
            key = f"{kind}:{due.isoformat()}"
            if due < day and not _already(session, "overdue_alert", complaint, key):
                late.append((complaint, kind, due))
                _event(session, now, "overdue_alert", {"key": key}, complaint=complaint)
            elif day <= due <= horizon and not _already(session, "reminder", complaint, key):
                soon.append((complaint, kind, due))
                _event(session, now, "reminder", {"key": key}, complaint=complaint)
        last = session.scalar(select(JobRun).where(JobRun.job == "remind")
                              .order_by(JobRun.day.desc()))
        since = int(last.detail.get("last_inbound", 0)) if last else 0
        quarantined = session.scalars(
            select(Inbound).where(Inbound.id > since,
                                  Inbound.action.in_(QUARANTINED))
            .order_by(Inbound.id)
        ).all()
        newest = session.scalar(select(Inbound.id).order_by(Inbound.id.desc())) or since
        abandoned = session.scalars(
            select(Event).where(Event.kind == "abandoned", Event.at > (last.at if last else
                                                                        dt.datetime.min))
        ).all()
        unfiled = repeated_filing_failures(session)
        counts = {"reminders": len(soon), "overdue": len(late),
                  "quarantined": len(quarantined), "abandoned": len(abandoned),
                  "unfiled": len(unfiled)}
        if soon or late or quarantined or abandoned or unfiled:
            enqueue(session, app, Email(
                EmailKind.DIRECTOR_DIGEST, list(app.config.organisation.director_addresses),
                context={"day": day,
                         "soon": [(c, k, d, app.tokens.tag(c.number, c.key_generation))
                                  for c, k, d in soon],
                             "late": [(c, k, d, app.tokens.tag(c.number, c.key_generation))
                                      for c, k, d in late],
                             "quarantined": quarantined, "abandoned": len(abandoned),
                             "folder": app.config.folders.quarantine, "unfiled": unfiled},
                reference=f"digest-{day.isoformat()}",
                auto_submitted="auto-generated"))
            counts["digest"] = 1
        counts["last_inbound"] = newest
        return counts

    return once(app, "remind", day, work)


# --- Follow-ups: incomplete tickets, forgotten contacts, satisfaction -----------------------


def followup(app: App, day: dt.date) -> JobResult:
    """Remind incomplete tickets once, then abandon them; ask for satisfaction once."""
    t = app.rulebook.time
    moment = job_moment(day)

    def work(session: Session, now: dt.datetime) -> dict[str, int]:
        counts = {"ticket_reminders": 0, "abandoned_tickets": 0, "abandoned_contacts": 0,
                  "satisfaction_questions": 0}
        incomplete = select(Ticket).where(Ticket.status == TicketStatus.INCOMPLETE)
        for ticket in session.scalars(incomplete):
            if ticket.reminded_at is None:
                if ticket.updated_at + dt.timedelta(days=t.incomplete_remind_after_days) <= moment:
                    if ticket.complainant_email:
                        enqueue(session, app, Email(
                            EmailKind.TICKET_REMINDER, [ticket.complainant_email],
                            context={"ticket": ticket, "problems": ticket.problems},
                            reference=ticket.reference),
                            ticket=ticket)
                    ticket.reminded_at = now
                    _event(session, now, "ticket_reminder", {}, ticket=ticket)
                    counts["ticket_reminders"] += 1
            elif ticket.reminded_at + dt.timedelta(days=t.incomplete_abandon_after_days) <= moment:
                ticket.status = TicketStatus.ABANDONED
                ticket.updated_at = now
                _event(session, now, "abandoned", {"what": "ticket"}, ticket=ticket)
                counts["abandoned_tickets"] += 1
        for contact in session.scalars(select(Contact).where(Contact.status == ContactStatus.OPEN)):
            opened = contact.opened_at or contact.received_at
            if opened + dt.timedelta(days=t.contact_abandon_after_days) <= moment:
                contact.status = ContactStatus.ABANDONED
                _event(session, now, "abandoned", {"what": "contact"}, contact=contact)
                counts["abandoned_contacts"] += 1
        answered = session.scalars(select(Complaint).where(
            Complaint.status.in_((ComplaintStatus.ANSWERED, ComplaintStatus.CLOSED)),
            Complaint.satisfaction_asked_at.is_(None),
            Complaint.response_date.is_not(None),
            Complaint.purged_at.is_(None),
        ))
        for complaint in answered:
            assert complaint.response_date is not None
            if complaint.response_date + dt.timedelta(days=t.satisfaction_after_days) <= day:
                enqueue(session, app, Email(
                    EmailKind.SATISFACTION, [complaint.client_email],
                    context={"complaint": complaint},
                    reference=complaint.number,
                    auto_submitted="auto-generated"),
                    complaint=complaint)
                complaint.satisfaction_asked_at = now
                _event(session, now, "satisfaction_asked", {}, complaint=complaint)
                counts["satisfaction_questions"] += 1
        return counts

    return once(app, "followup", day, work)


# --- The monthly report -----------------------------------------------------------------------


def previous_month(day: dt.date) -> tuple[dt.date, dt.date]:
    """First day of the month before ``day``'s, and first day of ``day``'s month."""
    end = day.replace(day=1)
    start = (end - dt.timedelta(days=1)).replace(day=1)
    return start, end


def monthly_report(app: App, day: dt.date, force: bool = False) -> JobResult:
    """On the first working day of a month, email last month's report and the register."""
    if not force and (not app.rulebook.time.monthly_report
                      or day != app.rulebook.calendar.first_working_day(day.year, day.month)):
        return JobResult("monthly_report", day, counts={"not the first working day": 1})
    from bot.reporting.report import build_report, register_workbook

    start, end = previous_month(day)

    def work(session: Session, now: dt.datetime) -> dict[str, int]:
        report = build_report(session, app, start, end)
        workbook = register_workbook(session, app, report)
        enqueue(session, app, Email(
            EmailKind.DIRECTOR_MONTHLY_REPORT, list(app.config.organisation.director_addresses),
            context={"report": report, "start": start, "end": end},
            reference=f"rapport-{start:%Y-%m}",
            auto_submitted="auto-generated",
            attachments=[
                    (f"registre-reclamations-{start:%Y-%m}.xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     workbook),
                    (f"rapport-reclamations-{start:%Y-%m}.html", "text/html",
                     report.html.encode("utf-8")),
                ]))
        return {"report": 1, "complaints": report.figures["received"]}

    return once(app, "monthly_report", day, work)


def run_daily(app: App, day: dt.date) -> list[JobResult]:
    """Every daily job, in order; one failing does not stop the others."""
    results = []
    for job in (followup, remind, purge, monthly_report):
        try:
            results.append(job(app, day))
        except Exception:
            log.exception("job %s failed for %s; it runs again at its next slot",
                          job.__name__, day)
    return results


def today(app: App) -> dt.date:
    """The current day in Paris by the app's clock."""
    return local(app.clock()).date()
