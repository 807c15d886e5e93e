"""How a scheduled job runs once per day: the day's moment, the record of the run in
``job_runs`` (in the same transaction as the job's effects), and what it reports.

Shared by the jobs of :mod:`bot.procedure.jobs` and the retention of
:mod:`bot.procedure.purge`, which neither imports the other through it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.core.clock import PARIS
from bot.store.models import JobRun

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What a job did, for the command line and the tests."""

    job: str
    day: dt.date
    skipped: bool = False  # already done for that day
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """What the job did that day, in words («rappels du 08/12/2026 : 2 échéances
        proches, point du jour envoyé»); the codes stay in the job's record."""
        name = JOB_LABELS.get(self.job, self.job)
        if self.skipped:
            return f"{name} du {self.day:%d/%m/%Y} : déjà fait pour ce jour"
        done = ", ".join(f"{COUNT_LABELS[k]} : {v}" if k in COUNT_LABELS else f"{k} : {v}"
                         for k, v in self.counts.items() if k not in _UNSHOWN and v)
        return f"{name} du {self.day:%d/%m/%Y} : {done or 'rien à faire'}"


#: What each daily job is called where the operator reads it.
JOB_LABELS = {"remind": "rappels", "followup": "suivi des tickets et contacts",
              "purge": "effacement RGPD", "monthly_report": "rapport mensuel"}
#: The counts a job records, in words (a count of 0 is not shown).
COUNT_LABELS = {
    "reminders": "échéances proches", "overdue": "échéances dépassées",
    "quarantined": "messages en quarantaine", "abandoned": "abandons signalés",
    "unfiled": "messages non classés", "digest": "points du jour envoyés",
    "ticket_reminders": "tickets relancés", "abandoned_tickets": "tickets abandonnés",
    "abandoned_contacts": "premiers contacts abandonnés",
    "satisfaction_questions": "questions de satisfaction envoyées",
    "erased": "dossiers effacés", "held": "dossiers conservés (#conserver)",
    "pending_erased": "tickets et contacts effacés", "rows_deleted": "lignes supprimées",
    "report": "rapports envoyés",
    "not the first working day": "pas le premier jour ouvré du mois",
}
#: Recorded for the job's own use, meaningless to the operator.
_UNSHOWN = frozenset({"last_inbound"})


def job_moment(day: dt.date) -> dt.datetime:
    """The moment a day's jobs run: 07:00 in Paris, as naive UTC."""
    moment = dt.datetime.combine(day, dt.time(7, 0), tzinfo=PARIS)
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def once(app: App, name: str, day: dt.date,
          work: Callable[[Session, dt.datetime], dict[str, int]]) -> JobResult:
    """Run ``work`` for ``day`` unless it already ran; record the run with its effects."""
    result = JobResult(name, day)
    with app.transaction() as session:
        if session.get(JobRun, (name, day)) is not None:
            result.skipped = True
            return result
        now = app.clock()
        result.counts = work(session, now)
        session.add(JobRun(job=name, day=day, at=now, detail=result.counts))
    log.info("%s", result.line())
    return result
