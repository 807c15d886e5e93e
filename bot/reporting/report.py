"""Indicators and reports: what an auditor asks for (Qualiopi indicators 31 and 32).

``build_report`` computes the figures of a period from the register, draws the charts with
matplotlib (real PNG images, embedded in the HTML) and renders ``templates/report/``.
The same figures are written as CSV, and the register as an .xlsx workbook (openpyxl).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import local
from bot.core.states import IN_PROGRESS, ComplaintStatus
from bot.core.text import number_fr
from bot.reporting.export import REGISTER_COLUMNS, column_value
from bot.reporting.inert import csv_row, strings_as_strings
from bot.store.deadlines import received_day
from bot.store.models import Complaint, Ticket

if TYPE_CHECKING:
    from bot.app import App
    from bot.core.workdays import Calendar
    from bot.rulebook import Rulebook


@dataclass
class Report:
    """The figures of one period, its charts, and the rendered HTML."""

    start: dt.date
    end: dt.date  # exclusive
    figures: dict[str, Any] = field(default_factory=dict)
    breakdowns: dict[str, dict[str, int]] = field(default_factory=dict)
    recurring: list[tuple[str, int]] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)  # name -> PNG as base64
    html: str = ""

    def rows(self) -> list[tuple[str, str, str]]:
        """(section, indicator, value) rows, as in the CSV."""
        return [(section, name, _fmt(value)) for section, name, value in self.typed_rows()]

    def typed_rows(self) -> list[tuple[str, str, Any]]:
        """(section, indicator, value) rows with their values as numbers and dates, for
        a workbook whose cells a spreadsheet sorts and sums."""
        rows: list[tuple[str, str, Any]] = [("Période", "du", self.start),
                                            ("Période", "au (exclu)", self.end)]
        rows += [("Indicateurs", FIGURE_LABELS.get(key, key), value)
                 for key, value in self.figures.items()]
        for name, counts in self.breakdowns.items():
            rows += [(name, key, value) for key, value in counts.items()]
        rows += [("Objets récurrents sur 12 mois", key, n) for key, n in self.recurring]
        return rows


#: The indicators as an organisation's people read them (the keys stay the code's).
FIGURE_LABELS: dict[str, str] = {
    "received": "Réclamations reçues",
    "conforming": "Réclamations conformes enregistrées",
    "incomplete on arrival": "Tickets incomplets à l'arrivée",
    "requalified": "Requalifiées (hors réclamation)",
    "acknowledge median (working days)": "Délai médian d'accusé de réception (jours ouvrés)",
    "acknowledge p90 (working days)": "Délai d'accusé de réception, 90e centile (jours ouvrés)",
    "answered": "Réclamations ayant reçu une réponse",
    "answer median (working days)": "Délai médian de réponse (jours ouvrés)",
    "answer p90 (working days)": "Délai de réponse, 90e centile (jours ouvrés)",
    "answered within the deadline (%)": "Réponses dans le délai (%)",
    "outcome positive": "Réponses positives",
    "outcome partial": "Réponses partielles",
    "outcome negative": "Réponses négatives",
    "informed of mediation (%)": "Consommateurs informés de la médiation (%)",
    "satisfaction asked": "Enquêtes de satisfaction envoyées",
    "with failures identified": "Réclamations avec manquement identifié",
    "failures identified": "Manquements identifiés",
    "actions taken": "Actions menées",
    "led to a corrective action (%)": "Ayant donné lieu à une action corrective (%)",
    "reopened": "Réclamations rouvertes",
    "still open": "Réclamations encore en cours",
}


def figure_rows(report: Report) -> list[tuple[str, str]]:
    """(French label, value) of each indicator; a missing value reads "—"."""
    return [(FIGURE_LABELS.get(key, key), number_fr(value))
            for key, value in report.figures.items()]


def cover_figures(session: Session, rules: Rulebook, start: dt.date,
                  last: dt.date) -> list[tuple[str, str]]:
    """The indicators of complaints received from ``start`` to ``last`` included, for the
    cover page of the PDF register (no charts: they are the report's)."""
    return figure_rows(compute(session, rules.calendar, start, last + dt.timedelta(days=1),
                               charts=False))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def typed(value: Any) -> Any:
    """A register value as a workbook cell holds it: Paris time for datetimes (a date
    cell, not text), numbers as numbers, oui/non for booleans, text otherwise."""
    if isinstance(value, dt.datetime):
        return local(value).replace(tzinfo=None)
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, (dt.date, int, float)) or value is None:
        return value
    return str(value)


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _in_period(complaint: Complaint, start: dt.date, end: dt.date) -> bool:
    return start <= received_day(complaint) < end


#: The stages of :func:`build_report`, for a progress bar.
REPORT_STAGES = 3


def compute(session: Session, calendar: Calendar, start: dt.date, end: dt.date,
            step: Callable[[], None] | None = None, charts: bool = True) -> Report:
    """The indicators of complaints received in [start, end); ``step`` after each stage."""
    everything = session.scalars(select(Complaint).order_by(Complaint.id)).all()
    period = [c for c in everything if _in_period(c, start, end)]
    requalified = [c for c in period if c.status == ComplaintStatus.REQUALIFIED]
    conforming = [c for c in period if c.status != ComplaintStatus.REQUALIFIED]
    tickets = session.scalars(select(Ticket)).all()
    incomplete = [t for t in tickets if start <= local(t.received_at).date() < end]
    to_ack = [calendar.working_days_between(received_day(c), local(c.acknowledged_at).date())
              for c in conforming if c.acknowledged_at]
    answered = [c for c in conforming if c.response_date]
    to_answer = [calendar.working_days_between(received_day(c), c.response_date)  # type: ignore[arg-type]
                 for c in answered]
    in_time = [c for c in answered if c.answer_due_initial and
               c.response_date <= c.answer_due_initial]  # type: ignore[operator]
    outcomes = Counter(c.response_outcome for c in answered)
    owed_mediation = [c for c in answered if c.response_outcome in ("négative", "partielle")
                      and c.is_consumer is not False]
    informed = [c for c in owed_mediation if c.mediation_sent_at]
    asked = [c for c in conforming if c.satisfaction_asked_at]
    satisfaction = Counter(c.satisfaction or "sans réponse" for c in asked)
    with_failures = [c for c in conforming if c.failures]
    corrected = [c for c in conforming if c.actions]
    report = Report(start=start, end=end)
    report.figures = {
        "received": len(period),
        "conforming": len(conforming),
        "incomplete on arrival": len(incomplete),
        "requalified": len(requalified),
        "acknowledge median (working days)": _percentile(to_ack, 0.5),
        "acknowledge p90 (working days)": _percentile(to_ack, 0.9),
        "answered": len(answered),
        "answer median (working days)": _percentile(to_answer, 0.5),
        "answer p90 (working days)": _percentile(to_answer, 0.9),
        "answered within the deadline (%)": _share(len(in_time), len(answered)),
        "outcome positive": outcomes.get("positive", 0),
        "outcome partial": outcomes.get("partielle", 0),
        "outcome negative": outcomes.get("négative", 0),
        "informed of mediation (%)": _share(len(informed), len(owed_mediation)),
        "satisfaction asked": len(asked),
        "with failures identified": len(with_failures),
        "failures identified": sum(len(c.failures) for c in conforming),
        "actions taken": sum(len(c.actions) for c in conforming),
        "led to a corrective action (%)": _share(len(corrected), len(conforming)),
        "reopened": sum(1 for c in conforming if c.reopened_count),
        "still open": sum(1 for c in conforming if c.status in IN_PROGRESS),
    }
    report.breakdowns = {
        "Par partie prenante": dict(Counter(c.category or "?" for c in conforming)),
        "Par action de formation": dict(Counter(c.training_actions or "?" for c in conforming)),
        "Par catégorie d'objet": dict(Counter(c.object_category or "Autre" for c in conforming)),
        "Satisfaction": dict(satisfaction),
    }
    year_ago = end - dt.timedelta(days=365)
    recent = Counter(c.object_category or "Autre" for c in everything
                     if c.status != ComplaintStatus.REQUALIFIED
                     and year_ago <= received_day(c) < end)
    report.recurring = sorted(((k, n) for k, n in recent.items() if n >= 2),
                              key=lambda kv: (-kv[1], kv[0]))
    if step:
        step()
    if charts:
        report.charts = _charts(calendar, everything, answered, outcomes, end)
    if step:
        step()
    return report


def _charts(calendar: Calendar, everything: Sequence[Complaint], answered: list[Complaint],
            outcomes: Counter[str], end: dt.date) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def png(fig: Any) -> str:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    months = []
    cursor = end.replace(day=1)
    for _ in range(12):
        cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
        months.append(cursor)
    months.reverse()
    per_month = Counter(received_day(c).replace(day=1) for c in everything
                        if c.status != ComplaintStatus.REQUALIFIED)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar([m.strftime("%m/%y") for m in months], [per_month.get(m, 0) for m in months],
           color="#3b6ea5")
    ax.set_title("Réclamations reçues par mois")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    charts = {"per_month": png(fig)}

    fig, ax = plt.subplots(figsize=(8, 3))
    labels = [c.number[-7:] for c in answered]
    delays = [calendar.working_days_between(received_day(c), c.response_date)  # type: ignore[arg-type]
              for c in answered]
    limits = [calendar.working_days_between(received_day(c), c.answer_due_initial)
              if c.answer_due_initial else 0 for c in answered]
    ax.bar(labels, delays, color=["#c0392b" if d > lim else "#27ae60"
                                  for d, lim in zip(delays, limits, strict=True)])
    if limits:
        ax.plot(labels, limits, color="black", linestyle="--", label="délai")
        ax.legend()
    ax.set_title("Délai de réponse (jours ouvrés) et délai promis")
    charts["answer_times"] = png(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    names = ["positive", "partielle", "négative"]
    ax.bar(names, [outcomes.get(n, 0) for n in names], color=["#27ae60", "#e67e22", "#c0392b"])
    ax.set_title("Issue des réponses")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    charts["outcomes"] = png(fig)
    return charts


def build_report(session: Session, app: App, start: dt.date, end: dt.date,
                 step: Callable[[], None] | None = None) -> Report:
    """Figures, charts and the HTML page of the period [start, end); ``step`` per stage."""
    report = compute(session, app.rulebook.calendar, start, end, step)
    report.html = app.renderer.render_template("report/report.html", report=report,
                                               generated=app.clock())
    if step:
        step()
    return report


def write_csv(report: Report, out: io.TextIOBase) -> None:
    """The report's figures as CSV (section;indicator;value)."""
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["Rubrique", "Indicateur", "Valeur"])
    writer.writerows(csv_row(row) for row in report.rows())


def register_workbook(session: Session, app: App, report: Report | None = None) -> bytes:
    """The register as an .xlsx workbook: register, actions and indicators sheets."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="3B6EA5")

    def sheet(title: str, header: list[str], rows: list[list[Any]], widths: list[int]) -> None:
        ws = workbook.create_sheet(title)
        ws.append(header)
        for row in rows:
            ws.append([typed(value) for value in row])
        for index, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        for c in ws[1]:
            c.font, c.fill = header_font, header_fill
            c.alignment = Alignment(wrap_text=True, vertical="top")
        for row_cells in ws.iter_rows(min_row=2):
            strings_as_strings(row_cells)
            for c in row_cells:
                c.alignment = Alignment(wrap_text=True, vertical="top")
                if isinstance(c.value, dt.datetime):
                    c.number_format = "DD/MM/YYYY HH:MM"
                elif isinstance(c.value, dt.date):
                    c.number_format = "DD/MM/YYYY"
                elif isinstance(c.value, float):
                    c.number_format = "0.0"
        ws.freeze_panes = "B2"
        ws.auto_filter.ref = ws.dimensions

    workbook.remove(workbook.active)
    complaints = session.scalars(select(Complaint)
                                 .where(Complaint.status != ComplaintStatus.REQUALIFIED)
                                 .order_by(Complaint.year, Complaint.sequence)).all()
    rules = app.rulebook
    sheet("Registre", [label for label, _ in REGISTER_COLUMNS],
          [[column_value(c, column, rules) for _, column in REGISTER_COLUMNS]
           for c in complaints],
          [16] + [24] * (len(REGISTER_COLUMNS) - 1))
    sheet("Actions", ["Numéro", "Date", "Action", "Manquements identifiés"],
          [[c.number, a.day, a.text, "\n".join(f.text for f in c.failures)]
           for c in complaints for a in c.actions],
          [16, 12, 60, 50])
    if report is None:
        today = local(app.clock()).date()
        report = compute(session, app.rulebook.calendar, today.replace(month=1, day=1),
                         today + dt.timedelta(days=1))
    sheet("Indicateurs", ["Rubrique", "Indicateur", "Valeur"],
          [list(r) for r in report.typed_rows()], [28, 44, 14])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
