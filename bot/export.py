"""Export the register: one row per complaint, French headers with the procedure's labels."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.deadlines import next_deadline
from bot.models import Complaint
from bot.render import local
from bot.rulebook import Rulebook


def failures_text(complaint: Complaint) -> str:
    """The failures identified, one per line."""
    return "\n".join(f"- {f.text}" for f in complaint.failures)


def actions_text(complaint: Complaint) -> str:
    """The actions taken, with their dates, one per line."""
    return "\n".join(f"{a.day.isoformat()} : {a.text}" for a in complaint.actions)


def response_text(complaint: Complaint) -> str:
    """The answer given: its outcome, then its text."""
    if not complaint.response_outcome:
        return ""
    return f"{complaint.response_outcome} — {complaint.response_text}"


def next_deadline_text(complaint: Complaint, rules: Rulebook) -> str:
    """The next deadline, as ``réponse 2026-12-09``."""
    deadline = next_deadline(complaint, rules)
    return f"{deadline[0]} {deadline[1].isoformat()}" if deadline else ""


Column = str | Callable[[Complaint], str] | Callable[[Complaint, "Rulebook"], str]

# (header as the procedure names the element, attribute of Complaint or function).
# First column: the number.
REGISTER_COLUMNS: tuple[tuple[str, Column], ...] = (
    ("Numéro du ticket", "number"),
    ("Date de réception du ticket", "received_at"),
    ("Date de réclamation initiale", "initial_contact_at"),
    ("Mode de réclamation initiale (n° du ticket)", "initial_mode"),
    ("Nom du client", "client_name"),
    ("Adresse e-mail", "client_email"),
    ("Téléphone", "phone"),
    ("Qualité (partie prenante)", "category"),
    ("Entreprise / organisme", "organisation"),
    ("Agit en tant que", "acting_as"),
    ("Objet de la réclamation", "object"),
    ("Contrat, produit ou service visé", "product"),
    ("Intervenants concernés", "parties_involved"),
    ("Action(s) concernée(s)", "training_actions"),
    ("Date des faits", "facts_date"),
    ("Description de la réclamation", "description"),
    ("Solution attendue", "expected_solution"),
    ("Identification des manquements", failures_text),
    ("Réponse apportée (positive ou négative)", response_text),
    ("Actions menées (avec dates)", actions_text),
    ("Résolution du dysfonctionnement ou du mécontentement", "resolution"),
    ("Date de réponse au réclamant", "response_date"),
    ("Numéro du formulaire de réponse", "response_number"),
    ("Emplacement des pièces justificatives", "documents_location"),
    ("Version du formulaire", "form_version"),
    ("Statut", "status"),
    ("Accusé de réception envoyé le", "acknowledged_at"),
    ("Échéance de réponse", "answer_due"),
    ("Prochaine échéance", next_deadline_text),
    ("Prolongation (motif)", "extension_reason"),
    ("Catégorie de l'objet", "object_category"),
    ("Satisfaction", "satisfaction"),
    ("Consommateur (médiation)", "is_consumer"),
    ("Information médiation envoyée le", "mediation_sent_at"),
    ("Clôturée le", "closed_at"),
)


def cell(value: object) -> str:
    """A register value as text: Paris time for datetimes, ISO dates, oui/non."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return local(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value)


def column_value(complaint: Complaint, column: Column, rules: Rulebook) -> object:
    """The value of one register column for one complaint."""
    if isinstance(column, str):
        return getattr(complaint, column)
    if column is next_deadline_text:
        return next_deadline_text(complaint, rules)
    return column(complaint)  # type: ignore[call-arg]


def register_rows(session: Session, rules: Rulebook) -> Iterable[list[str]]:
    """The register as text rows, in number order."""
    query = (
        select(Complaint)
        .where(Complaint.status != "requalified")  # not a complaint: kept in its own log
        .order_by(Complaint.year, Complaint.sequence)
    )
    for complaint in session.scalars(query):
        yield [cell(column_value(complaint, column, rules)) for _, column in REGISTER_COLUMNS]


def write_csv(session: Session, out: IO[str], rules: Rulebook, delimiter: str = ";") -> int:
    """Write the register as CSV (``;`` as French spreadsheets expect); return the row count."""
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    writer.writerow([label for label, _ in REGISTER_COLUMNS])
    count = 0
    for row in register_rows(session, rules):
        writer.writerow(row)
        count += 1
    return count


def register_pdf(session: Session, rules: Rulebook, organisation: str,
                 generated: dt.datetime) -> bytes:
    """A readable, paginated register for an auditor: one block per complaint."""
    from pathlib import Path

    import matplotlib
    from fpdf import FPDF

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"  # DejaVu: every accent
    rows = list(register_rows(session, rules))
    labels = [label for label, _ in REGISTER_COLUMNS]

    class Register(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", size=8)
            self.cell(0, 8, f"{organisation} — dossier des réclamations — page "
                            f"{self.page_no()}/{{nb}}", align="C")

    pdf = Register(orientation="P", unit="mm", format="A4")
    pdf.add_font("DejaVu", fname=str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", style="B", fname=str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 10, f"Dossier des réclamations — {organisation}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=10)
    pdf.cell(0, 8, f"{len(rows)} réclamation(s) ; édité le {cell(generated)}",
             new_x="LMARGIN", new_y="NEXT")
    for row in rows:
        pdf.ln(4)
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(0, 8, row[0], new_x="LMARGIN", new_y="NEXT", border="B")
        for label, value in zip(labels[1:], row[1:], strict=True):
            if not value:
                continue
            pdf.set_font("DejaVu", "B", 8)
            pdf.multi_cell(55, 5, label, new_x="RIGHT", new_y="TOP")
            pdf.set_font("DejaVu", size=8)
            pdf.multi_cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
