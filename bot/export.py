"""Export the register: one row per complaint, French headers with the procedure's labels."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Complaint
from bot.render import local


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


Column = str | Callable[[Complaint], str]

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


def register_rows(session: Session) -> Iterable[list[str]]:
    """The register as text rows, in number order (streamed)."""
    query = (
        select(Complaint)
        .where(Complaint.status != "requalified")  # not a complaint: kept in its own log
        .order_by(Complaint.year, Complaint.sequence)
    )
    for complaint in session.scalars(query):
        yield [
            cell(column(complaint) if callable(column) else getattr(complaint, column))
            for _, column in REGISTER_COLUMNS
        ]


def write_csv(session: Session, out: IO[str], delimiter: str = ";") -> int:
    """Write the register as CSV (``;`` as French spreadsheets expect); return the row count."""
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    writer.writerow([label for label, _ in REGISTER_COLUMNS])
    count = 0
    for row in register_rows(session):
        writer.writerow(row)
        count += 1
    return count
