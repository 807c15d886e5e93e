"""The reader of replies: the sender's new text, as her client wrote it, and nothing else.

Each file of ``tests/data/replies/`` is a reply shaped as a real client sends it (its
text and HTML parts, charsets and transfer encodings, quote and signatures), built from
the clients' documented formats and public fixtures (each index names its sources), with
the text its sender typed beside it (``.expected.txt``). No server is needed here; the
same replies go through Dovecot and the test SMTP server in ``test_replies_mailbox.py``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.core.text import reflow, unflow
from bot.intake.htmltext import html_to_text
from bot.intake.message import parse_message
from bot.intake.replies import Reading, new_text, read_reply
from bot.rulebook.replies import shipped_reply_rules

DATA = Path(__file__).parent / "data" / "replies"
RULES = shipped_reply_rules()
FIXTURES = sorted(DATA.glob("*.eml"))


def index() -> dict[str, dict[str, object]]:
    """Every fixture's entry in the indexes, by file name."""
    entries: dict[str, dict[str, object]] = {}
    for path in sorted(DATA.glob("index-*.toml")):
        for entry in tomllib.loads(path.read_text(encoding="utf-8")).get("reply", []):
            entries[str(entry["file"])] = entry
    return entries


def expected(path: Path) -> str:
    return path.with_name(path.stem + ".expected.txt").read_text(encoding="utf-8").strip("\n")


def reading(path: Path) -> Reading:
    return read_reply(parse_message(path.read_bytes()), RULES)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_the_new_text_of_each_client_is_what_its_sender_typed(path: Path) -> None:
    assert reading(path).text == expected(path)


def test_every_client_rule_has_its_file() -> None:
    """A rule of rules/replies.toml that no fixture makes match is a rule nobody checked."""
    matched = {cut.rule for path in FIXTURES for cut in reading(path).cuts}
    assert set(RULES.names) - matched == set()


def test_the_corpus_covers_the_clients_and_says_where_each_shape_comes_from() -> None:
    entries = index()
    assert len(FIXTURES) >= 40
    assert {p.name for p in FIXTURES} == set(entries)
    for name, entry in entries.items():
        assert entry.get("sources"), f"{name}: no source for its shape"
        assert entry.get("kind") in ("director", "complainant"), name
    assert sum(entry["kind"] == "complainant" for entry in entries.values()) >= 5


# --- format=flowed (RFC 3676) ----------------------------------------------------------


def test_flowed_soft_breaks_are_joined_and_hard_ones_kept() -> None:
    text = "Nous vous prions de \r\nnous excuser.\r\nMerci\r\n\r\n-- \r\nClaire\r\n"
    assert unflow(text) == "Nous vous prions de nous excuser.\nMerci\n\n-- \nClaire\n"


def test_flowed_delsp_removes_the_space_of_the_soft_break() -> None:
    assert unflow("attes \r\ntation envoy\u00e9e", delsp=True) == "attestation envoy\u00e9e"


def test_flowed_space_stuffing_and_quote_depth() -> None:
    text = " From the start\r\n>> deux \r\n>> niveaux\r\n> un niveau \r\n>> autre\r\n"
    assert unflow(text).split("\n")[:4] == [
        "From the start", ">> deux niveaux", "> un niveau ", ">> autre"]


def test_a_flowed_part_is_joined_at_parsing() -> None:
    raw = (b"From: a@example.org\r\nTo: b@example.fr\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Toutes nos ex \r\ncuses pour ce re \r\ntard.\r\n")
    assert parse_message(raw).text == "Toutes nos excuses pour ce retard."


# --- reflowing her paragraphs ---------------------------------------------------------


def test_reflow_joins_a_clients_wrapping_and_keeps_her_lines() -> None:
    wrapped = (
        "Madame,\n\n"
        "Nous vous prions de nous excuser pour ce retard. Votre attestation vous a\n"
        "été envoyée ce jour par courrier et par e-mail, avec la copie de la feuille\n"
        "d'émargement.\n\n"
        "- une copie de l'attestation, envoyée par courrier recommandé ce matin même\n"
        "  au siège de votre employeur\n"
        "- le programme\n\n"
        "Claire Durand\nDirectrice des formations")
    assert reflow(wrapped) == (
        "Madame,\n\n"
        "Nous vous prions de nous excuser pour ce retard. Votre attestation vous a été "
        "envoyée ce jour par courrier et par e-mail, avec la copie de la feuille "
        "d'émargement.\n\n"
        "- une copie de l'attestation, envoyée par courrier recommandé ce matin même "
        "au siège de votre employeur\n"
        "- le programme\n\n"
        "Claire Durand\nDirectrice des formations")


def test_reflow_leaves_unwrapped_text_alone() -> None:
    text = "Madame,\nUne ligne.\n\n" + "Un long paragraphe sans retour à la ligne. " * 6
    assert reflow(text) == text


# --- HTML by its structure ------------------------------------------------------------


def test_html_becomes_lines_lists_and_keeps_non_breaking_spaces() -> None:
    html = ("<div>#reponse partielle</div><div>Madame,</div><div><br></div>"
            "<div>Vos documents&nbsp;: «&nbsp;attestation&nbsp;»</div>"
            "<ul><li>premier</li><li>second</li></ul><p>Claire<br>Directrice</p>")
    assert html_to_text(html) == ("#reponse partielle\nMadame,\n\nVos documents\u00a0: "
                                  "«\u00a0attestation\u00a0»\n- premier\n- second\n\n"
                                  "Claire\nDirectrice")


def test_word_paragraphs_are_lines() -> None:
    html = ('<html xmlns:w="urn:schemas-microsoft-com:office:word"><body>'
            "<p class=MsoNormal>Madame,<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
            "<p class=MsoNormal>Texte - suite<o:p></o:p></p></body></html>")
    assert html_to_text(html) == "Madame,\n\nTexte - suite"


# --- the line rules, on small texts ---------------------------------------------------


@pytest.mark.parametrize("quote", [
    "Le mar. 24 nov. 2026 à 10:00, SophroAttitude <r@example.fr> a écrit :\n> ancien",
    "Le mar. 24 nov. 2026 à 10:00, SophroAttitude <\nr@example.fr> a écrit :\n> ancien",
    "Le 24 nov. 2026 à 10:00, SophroAttitude <r@example.fr> a écrit\u00a0:\n\n> ancien",
    "De\u00a0: SophroAttitude <r@example.fr>\nEnvoyé\u00a0: mardi 24 novembre 2026\n"
    "À\u00a0: moi\nObjet\u00a0: RE: x\n\nancien",
    "----- Mail original -----\nDe: \"SophroAttitude\" <r@example.fr>\nÀ: moi\nancien",
    "-------- Message d'origine --------\nDe : SophroAttitude\nDate : 24/11/2026\nancien",
    "-----Original Message-----\nFrom: SophroAttitude\nSent: Tuesday\nancien",
    "Am 24.11.2026 um 10:00 schrieb SophroAttitude <r@example.fr>:\n> ancien",
])
def test_the_quote_and_its_introduction_go(quote: str) -> None:
    assert new_text(f"#note nouveau texte\n\n{quote}\n") == "#note nouveau texte"


def test_text_written_under_a_quote_stays() -> None:
    text = ("Le 24 nov. 2026 à 10:00, SophroAttitude <r@example.fr> a écrit :\n"
            "> ancien\n> encore\n\n#note écrite sous la citation\n")
    assert new_text(text) == "#note écrite sous la citation"


def test_her_own_signature_stays_and_the_phones_goes() -> None:
    text = "#note texte\n\nClaire Durand\nDirectrice\n\nEnvoyé de mon iPhone\n"
    assert new_text(text) == "#note texte\n\nClaire Durand\nDirectrice"


def test_a_signature_block_and_its_disclaimer_go() -> None:
    text = "#cloturer\n\n-- \nClaire Durand\nCe message est confidentiel.\n"
    assert new_text(text) == "#cloturer"


def test_the_html_read_is_hers_alone() -> None:
    """A table in the quoted message (a form's labels and values) is no part of the HTML
    the fields of a reply are read from."""
    from bot.testing import samples

    html = ('<div dir="ltr">Version du formulaire : 2026-01</div><div class="gmail_quote">'
            "<table><tr><th>Description</th><td>le texte cité</td></tr></table></div>")
    raw = samples._message(sender="jeanne.martin@example.org", to="reclamations@example.fr",
                           subject="Re: formulaire", text="Version du formulaire : 2026-01",
                           html=html)
    read = read_reply(parse_message(raw), RULES)
    assert "le texte cité" not in read.html and "Description" not in read.html
    assert read.text == "Version du formulaire : 2026-01"


def test_every_style_and_script_goes_however_many_follow_each_other() -> None:
    html = ("<html><head><title>t</title><style>p{}</style></head><body>"
            "<style>a{}</style><style>b{}</style><script>x()</script><div>Madame,</div>"
            "</body></html>")
    assert html_to_text(html) == "Madame,"
