"""Export the register: one row per complaint, French headers with the procedure's labels."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import datetime_fr, local
from bot.core.states import ComplaintStatus, state_label
from bot.reporting.inert import csv_row
from bot.rulebook import Rulebook
from bot.store.deadlines import next_deadline
from bot.store.models import Complaint


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


def status_text(complaint: Complaint) -> str:
    """The complaint's state, in French."""
    return state_label(ComplaintStatus, complaint.status)


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
    ("Statut", status_text),
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


#: Columns whose text holds an ISO date of ours (the form stores the facts' date so).
_DATED_TEXT: tuple[Column, ...] = ("facts_date", next_deadline_text)
_ISO_DAY = re.compile(r"\b(\d{4})-(\d\d)-(\d\d)\b")


def for_people(value: object, column: Column | None = None) -> str:
    """A register value as people read it (the PDF): French dates in Paris time, oui/non;
    the ISO dates of our own columns as «30/09/2026» (a person's text is left as is)."""
    if isinstance(value, dt.datetime):
        return datetime_fr(value)
    if isinstance(value, dt.date):
        return f"{value:%d/%m/%Y}"
    text = cell(value)
    return _ISO_DAY.sub(r"\3/\2/\1", text) if column in _DATED_TEXT else text


def column_value(complaint: Complaint, column: Column, rules: Rulebook) -> object:
    """The value of one register column for one complaint."""
    if isinstance(column, str):
        return getattr(complaint, column)
    if column is next_deadline_text:
        return next_deadline_text(complaint, rules)
    return column(complaint)  # type: ignore[call-arg]


def _registered(session: Session) -> Iterable[Complaint]:
    """The register's complaints, in number order (a requalified one is kept in its own
    log: it is not a complaint)."""
    return session.scalars(select(Complaint)
                           .where(Complaint.status != ComplaintStatus.REQUALIFIED)
                           .order_by(Complaint.year, Complaint.sequence))


def register_rows(session: Session, rules: Rulebook) -> Iterable[list[str]]:
    """The register as text rows, in number order (ISO dates: the CSV's)."""
    for complaint in _registered(session):
        yield [cell(column_value(complaint, column, rules)) for _, column in REGISTER_COLUMNS]


def write_csv(session: Session, out: IO[str], rules: Rulebook, delimiter: str = ";") -> int:
    """Write the register as CSV (``;`` as French spreadsheets expect); return the row count."""
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    writer.writerow([label for label, _ in REGISTER_COLUMNS])
    count = 0
    for row in register_rows(session, rules):
        writer.writerow(csv_row(row))
        count += 1
    return count


def register_pdf(session: Session, rules: Rulebook, organisation: str,
                 generated: dt.datetime) -> bytes:
    """The register as an auditor reads it: a cover page with the period's indicators,
    then one block per complaint, labels and values wrapped in their own columns.

    fpdf2's tables measure every cell before drawing a row, so a long label or value
    makes its row taller instead of running over the next one; a block starts on a new
    page when its heading and first rows would not fit under the previous one.
    """
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    from bot.reporting.report import cover_figures

    complaints = list(_registered(session))
    rows = [[for_people(column_value(c, column, rules), column) for _, column in REGISTER_COLUMNS]
            for c in complaints]
    labels = [label for label, _ in REGISTER_COLUMNS]
    received = sorted(local(c.received_at).date() for c in complaints)
    period = (f"du {received[0]:%d/%m/%Y} au {received[-1]:%d/%m/%Y}" if received
              else "aucune réclamation enregistrée")
    edition = (f"{organisation} — registre des réclamations — édité le "
               f"{datetime_fr(generated)}")

    class Register(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", size=8)
            self.set_text_color(90)
            self.cell(0, 8, f"{edition} — page {self.page_no()}/{{nb}}", align="C")

    pdf = Register(orientation="P", unit="mm", format="A4")
    _add_fonts(pdf)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.alias_nb_pages()
    pdf.set_title(f"Registre des réclamations — {organisation}")
    pdf.set_author(organisation)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 20)
    pdf.ln(30)
    pdf.multi_cell(0, 11, "Registre des réclamations", align="L", new_x="LMARGIN",
                   new_y="NEXT")
    pdf.set_font("DejaVu", size=14)
    pdf.multi_cell(0, 8, organisation, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("DejaVu", size=11)
    for line in (f"Période : {period}", f"Nombre de réclamations : {len(rows)}",
                 f"Édité le : {datetime_fr(generated)}"):
        pdf.multi_cell(0, 7, line, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 8, "Indicateurs de la période", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=9)
    start = received[0] if received else generated.date()
    with pdf.table(col_widths=(120, 50), text_align=("LEFT", "RIGHT"), first_row_as_headings=False,
                   line_height=5.5, padding=1.2, borders_layout="HORIZONTAL_LINES") as table:
        for label, value in cover_figures(session, rules, start, generated.date()):
            table.row((label, value))
    label_style = FontFace(emphasis="BOLD")
    # The heading is the table's heading row: fpdf2 repeats it atop a page the block
    # continues on, so no page of the register shows values without their complaint.
    heading_style = FontFace(emphasis="BOLD", size_pt=11, fill_color=(235, 235, 235))
    for row in rows:
        if pdf.get_y() > pdf.h - 18 - 45:  # the heading and its first rows would not fit
            pdf.add_page()
        else:
            pdf.ln(6)
        pdf.set_font("DejaVu", size=8.5)
        with pdf.table(col_widths=(58, 132), text_align="LEFT", line_height=4.2, padding=1,
                       borders_layout="HORIZONTAL_LINES", v_align="TOP",
                       headings_style=heading_style) as table:
            table.row().cell(f"Réclamation {row[0]}", colspan=2)
            # Every element the procedure lists, an empty one as «—»: an auditor sees
            # what is not filled in yet, not a shorter block.
            for label, value in zip(labels[1:], row[1:], strict=True):
                for index, part in enumerate(_pieces(value) if value else ["—"]):
                    cells = table.row()
                    cells.cell(label if not index else f"{label} (suite)", style=label_style)
                    cells.cell(part)
    return bytes(pdf.output())


#: The most of a value one row of the register's PDF holds: a row is never split across
#: pages, so a longer value goes on in rows of its own, "(suite)", that each fit one.
_PIECE_CHARACTERS = 1500
_PIECE_LINES = 24


def _pieces(value: str) -> list[str]:
    """``value`` in pieces of at most :data:`_PIECE_CHARACTERS` characters and
    :data:`_PIECE_LINES` lines, cut between lines, else between words, where it can be."""
    pieces: list[str] = []
    rest = value
    while rest:
        piece = rest[:_PIECE_CHARACTERS]
        lines = piece.split("\n")
        if len(lines) > _PIECE_LINES:
            piece = "\n".join(lines[:_PIECE_LINES])
        elif len(rest) > len(piece):
            # Between lines where one ends in its second half, else between words.
            cut = piece.rfind("\n")
            if cut <= len(piece) // 2:
                cut = piece.rfind(" ")
            if cut > len(piece) // 2:
                piece = piece[:cut]
        pieces.append(piece.strip("\n"))
        rest = rest[len(piece):].lstrip(" \n")
    return [p for p in pieces if p] or [value]


def _french_date(iso: str) -> str:
    return dt.date.fromisoformat(iso[:10]).strftime("%d/%m/%Y")


def _add_fonts(pdf: Any) -> None:
    """DejaVu Sans (every accent, and the dashes and quotes of French text), as shipped
    with matplotlib, which the report already needs."""
    from pathlib import Path

    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdf.add_font("DejaVu", fname=str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", style="B", fname=str(fonts / "DejaVuSans-Bold.ttf"))
