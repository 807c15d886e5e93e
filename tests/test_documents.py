"""What people read: the PDF register an auditor asks for, in French, and legible.

The register comes from ``reclambot demo`` plus a dozen more complaints with long values,
so that blocks run over several pages; pdfplumber reads back every character with its
position, as a reader's eye would meet it.
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.states import STATE_LABELS
from bot.testing import samples

#: Every state code of the vocabulary: none may reach a French document.
ENGLISH_STATES = re.compile(
    r"\b(" + "|".join(sorted({code for words in STATE_LABELS.values() for code in words}))
    + r")\b")
LONG = ("Le formateur a modifié le programme sans prévenir ; les supports annoncés n'ont pas "
        "été remis, et les horaires ont changé trois fois. ") * 4


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's register with 12 more complaints, exported as PDF."""
    directory = tmp_path_factory.mktemp("documents") / "demo"
    assert main(["demo", "--dir", str(directory)]) == 0
    inbox = mailbox.Maildir(directory / "maildir" / "inbox", create=False)
    for i in range(12):
        fields = dict(samples.COMPLETE_FORM)
        fields.update({"Nom et prénom": f"Stagiaire {i}",
                       "Adresse e-mail": f"stagiaire{i}@example.org",
                       "Objet de la réclamation": f"Réclamation longue n° {i} : " + LONG[:150],
                       "Description": LONG, "Solution attendue": LONG[:300]})
        inbox.add(samples.form_submission(fields))
    config = str(directory / "config.toml")
    assert main(["--config", config, "run", "--once"]) == 0
    output = directory / "registre.pdf"
    assert main(["--config", config, "export", "--format", "pdf", "--output", str(output)]) == 0
    return output


def overlaps(chars: list[dict[str, float]], tolerance: float = 0.3) -> list[str]:
    """Pairs of characters whose boxes overlap by more than ``tolerance`` points both ways."""
    found = []
    ordered = sorted(chars, key=lambda c: (c["top"], c["x0"]))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b["top"] >= a["bottom"] - tolerance:
                break  # sorted by top: nothing further down can overlap a
            if min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > tolerance:
                found.append(f"{a['text']!r}@({a['x0']:.1f},{a['top']:.1f}) over "
                             f"{b['text']!r}@({b['x0']:.1f},{b['top']:.1f})")
    return found


def test_no_character_of_the_register_is_drawn_over_another(register: Path) -> None:
    import pdfplumber

    with pdfplumber.open(register) as pdf:
        assert len(pdf.pages) >= 4
        for number, page in enumerate(pdf.pages, 1):
            chars = [c for c in page.chars if c["text"].strip()]
            assert chars, f"page {number} is empty"
            assert overlaps(chars) == [], f"page {number}"


def test_the_overlap_check_sees_text_over_text() -> None:
    """The check itself: two characters at the same place are found, neighbours are not."""
    a = {"text": "a", "x0": 10.0, "x1": 15.0, "top": 20.0, "bottom": 28.0}
    b = dict(a, text="b", top=24.0, bottom=32.0)  # half a line lower, same column
    c = dict(a, text="c", x0=15.0, x1=20.0)  # the next letter of the same word
    assert len(overlaps([a, b])) == 1 and overlaps([a, c]) == []


def test_the_register_has_a_cover_page_and_numbered_pages(register: Path) -> None:
    import pdfplumber

    with pdfplumber.open(register) as pdf:
        texts = [page.extract_text() or "" for page in pdf.pages]
        total = len(pdf.pages)
        cover = texts[0]
        for expected in ("Registre des réclamations", "SophroAttitude", "Période : du ",
                         "Nombre de réclamations : 14", "Édité le", "Indicateurs de la période",
                         "Réclamations reçues", "Réponses dans le délai (%)"):
            assert expected in cover, expected
        for number, text in enumerate(texts, 1):
            assert f"page {number}/{total}" in text
        # Every block begins with its heading and first row on the same page, and a page
        # a block continues on begins with that block's heading again.
        seen: set[str] = set()
        for text in texts[1:]:
            lines = text.splitlines()
            assert lines[0].startswith("Réclamation REC-"), lines[0]
            for index, line in enumerate(lines):
                if line.startswith("Réclamation REC-") and line not in seen:
                    seen.add(line)
                    assert "Date de réception du ticket" in lines[index + 1], line
        assert len(seen) == 14


def test_the_register_speaks_french(register: Path) -> None:
    import pdfplumber

    with pdfplumber.open(register) as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    assert "Statut clôturée" in text or "Statut en cours" in text
    assert ENGLISH_STATES.findall(text) == []


def test_export_and_report_print_no_library_chatter(
        register: Path, capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """fontTools narrates every font subset at INFO: nothing of it on the operator's terminal."""
    config = str(register.parent / "config.toml")
    monkeypatch.chdir(register.parent)  # the report is written in the current folder
    capfd.readouterr()
    assert main(["--config", config, "export", "--format", "pdf",
                 "--output", str(register.parent / "again.pdf")]) == 0
    assert main(["--config", config, "report"]) == 0
    out, err = capfd.readouterr()
    assert "fontTools" not in err + out and "matplotlib" not in err + out
    assert " INFO " not in err
