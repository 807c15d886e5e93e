"""What people read in their mail clients: every HTML email of the bot, opened in a real
browser (Playwright driving Debian's Chromium) at a phone's width and a desktop's.

The emails are the demo's, plus a complaint whose values carry ``<``, ``>`` and ``&``, and
the director's commands on it, so that every kind a person meets in the demo is here,
with text that would break an HTML template that does not escape it. Screenshots are
saved under the test's temporary folder (``screens/``) for a person to look at.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.procedure.commands import HANDLERS
from bot.testing import samples
from tests.test_documents import ENGLISH_STATES

pytestmark = pytest.mark.integration

HOSTILE_NAME = "Jeanne <b>Martin</b> & Fils"
HOSTILE_OBJECT = 'Attestation <non> reçue & "urgente" <script>alert(1)</script>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PHONE, DESKTOP = 375, 800


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder, once the hostile complaint and the director's commands ran."""
    directory = tmp_path_factory.mktemp("emails") / "demo"
    assert main(["demo", "--dir", str(directory)]) == 0
    config = str(directory / "config.toml")
    inbox = mailbox.Maildir(directory / "maildir" / "inbox", create=False)
    fields = dict(samples.COMPLETE_FORM, **{
        "Nom et prénom": HOSTILE_NAME, "Adresse e-mail": "hostile@example.org",
        "Objet de la réclamation": HOSTILE_OBJECT,
        "Description": "Le tarif était < 100 € & > 50 €, on m'a dit <rien>."})
    inbox.add(samples.form_submission(fields))
    assert main(["--config", config, "run", "--once"]) == 0
    outbox = mailbox.Maildir(directory / "maildir" / "outbox", create=False)
    parsed = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
              for m in outbox]
    notice = next(m for m in parsed if "Nouvelle réclamation" in str(m["Subject"])
                  and "&" in m.get_body(("plain",)).get_content())
    inbox.add(samples.reply(
        notice.as_bytes(), "#manquement Attestation <oubliée> & relance\n#aide\n#liste\n",
        sender="direction@example.fr"))
    inbox.add(samples.reply(notice.as_bytes(), "#inconnue <x> & y\n",
                            sender="direction@example.fr"))
    inbox.add(samples.reply(notice.as_bytes(), "#prolonger 5 formateur <absent> & remplacé\n",
                            sender="direction@example.fr"))
    ack = next(m for m in parsed if str(m["To"]) == "hostile@example.org")
    inbox.add(samples.reply(ack.as_bytes(), "Merci <vraiment> & à bientôt.",
                            sender="hostile@example.org"))
    # The other open complaint of the demo: its acknowledgement bounces, then it is
    # requalified.
    other = next(m for m in parsed if "REC-2026-0002" in str(m["Subject"])
                 and "Nouvelle réclamation" in str(m["Subject"]))
    other_ack = next(m for m in parsed if str(m["To"]) == "sophie.leroy@example.net")
    inbox.add(samples.delivery_report(other_ack.as_bytes(), "sophie.leroy@example.net"))
    inbox.add(samples.reply(other.as_bytes(), "#requalifier demande <d'information> & devis\n",
                            sender="direction@example.fr"))
    assert main(["--config", config, "run", "--once"]) == 0
    return directory


@pytest.fixture(scope="module")
def sent(demo: Path) -> list[tuple[str, Any]]:
    """(kind, parsed email) of everything the demo and the hostile complaint sent."""
    from sqlalchemy import select

    from bot.app import build_app
    from bot.config import load_config
    from bot.store.models import Outbox

    app = build_app(load_config(demo / "config.toml"))
    with app.sessions() as session:
        kinds = dict(session.execute(select(Outbox.message_id, Outbox.kind)).all())
    app.close()
    messages = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
                for _key, m in sorted(mailbox.Maildir(demo / "maildir" / "outbox",
                                                      create=False).items())]
    return [(kinds[str(m["Message-ID"]).strip()], m) for m in messages]


def _parts(message: Any) -> tuple[str, str]:
    from bot.testing.memory import plain_text

    html = message.get_body(("html",))
    return (plain_text(message), html.get_content() if html else "")


def test_every_kind_the_demo_sends_is_looked_at(sent: list[tuple[str, Any]]) -> None:
    kinds = {kind for kind, _ in sent}
    assert {"form_link", "acknowledgement", "director_new_complaint", "information_request",
            "response", "mediation_rights", "director_confirmation", "director_error",
            "interim_notice", "director_correspondence", "director_unreachable",
            "requalified"} <= kinds, kinds
    assert all(_parts(m)[1] for _, m in sent)  # every email has its HTML version


HOSTILE_VALUES = (HOSTILE_NAME, HOSTILE_OBJECT, "<oubliée> & relance", "<texte>", "<motif>",
                  "<jours ouvrés>", "<texte de la réponse>", "< 100 € & > 50 €",
                  "<absent> & remplacé", "<vraiment> & à bientôt", "<d'information> & devis")


def look_at(messages: list[tuple[str, Any]], screens: Path) -> list[str]:
    """Open each email's HTML at a phone's width, then a desktop's, saving screenshots;
    the problems found: sideways scrolling, a value of the text version that is not on
    screen (``<``, ``>``, ``&`` read as markup), a script, words that differ.

    Playwright's synchronous API keeps an event loop running in its thread, where the
    bot's SMTP sink could not run its own: the browser gets a thread of its own.
    """
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (scripts/test.sh installs Debian's chromium)")
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(_look_at, messages, screens).result()


def _look_at(messages: list[tuple[str, Any]], screens: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            return _problems(browser, messages, screens)
        finally:
            browser.close()


def _problems(browser: Any, messages: list[tuple[str, Any]], screens: Path) -> list[str]:
    screens.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": PHONE, "height": 800})
    problems = []
    for index, (kind, message) in enumerate(messages):
        text, html = _parts(message)
        name = f"{index:02d}-{kind}"
        page.set_viewport_size({"width": PHONE, "height": 800})
        page.set_content(html)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE:
            problems.append(f"{name}: {width} px wide at {PHONE} px")
        page.screenshot(path=str(screens / f"{name}-{PHONE}.png"), full_page=True)
        visible = page.evaluate("document.body.innerText").replace("\u00a0", " ")
        problems += [f"{name}: {value!r} is in the text version, not on screen"
                     for value in HOSTILE_VALUES if value in text and value not in visible]
        if page.evaluate("document.querySelectorAll('script').length"):
            problems.append(f"{name}: a script element")
        only_text = _words(_without_urls(text)) - _words(_without_urls(visible))
        only_html = _words(_without_urls(visible)) - _words(_without_urls(text))
        if only_text or only_html:
            problems.append(f"{name}: only in text {sorted(only_text)}, "
                            f"only in HTML {sorted(only_html)}")
        page.set_viewport_size({"width": DESKTOP, "height": 900})
        page.screenshot(path=str(screens / f"{name}-{DESKTOP}.png"), full_page=True)
    page.close()
    return problems


def test_every_html_email_of_the_demo_reads_well_in_a_browser(
        sent: list[tuple[str, Any]], tmp_path: Path) -> None:
    """No sideways scrolling at 375 px, special characters intact, no script, and the
    same visible words as the text version (but for what each format writes its own
    way: links, the text version's URLs)."""
    assert look_at(sent, tmp_path / "screens") == []
    assert len(list((tmp_path / "screens").glob("*.png"))) == 2 * len(sent)


def _without_urls(text: str) -> str:
    return re.sub(r"(https?|mailto):\S+", " ", text)


def _words(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"[^\W\d_]{3,}", text)}


def test_each_command_is_a_mailto_link_that_opens_a_ready_reply(
        sent: list[tuple[str, Any]]) -> None:
    from urllib.parse import parse_qs, unquote, urlsplit

    notices = [m for kind, m in sent if kind == "director_new_complaint"]
    assert notices
    for message in notices:
        html = _parts(message)[1]
        links = [unquote(h) for h in re.findall(r'href="(mailto:[^"]+)"', html)]
        assert len(links) >= len(HANDLERS)
        for link in re.findall(r'href="(mailto:[^"]+)"', html):
            parts = urlsplit(link.replace("&amp;", "&"))
            assert parts.path == "reclamations@example.fr"
            query = parse_qs(parts.query)
            assert query["subject"] == [f"Re: {message['Subject']}"]
            assert query["body"][0].startswith("#")
        bodies = {parse_qs(urlsplit(link.replace("&amp;", "&")).query)["body"][0]
                  for link in re.findall(r'href="(mailto:[^"]+)"', html)}
        assert "#reponse positive\r\n" in bodies and "#cloturer " in bodies
        assert any(re.fullmatch(r"#action \d{4}-\d{2}-\d{2} ", b) for b in bodies)


def test_the_help_is_one_description_everywhere(sent: list[tuple[str, Any]]) -> None:
    """rules/commands.toml covers every command the parser knows, and the README shows
    exactly what the director gets."""
    from bot.config import package_data_dir
    from bot.outbound.render import Renderer
    from bot.rulebook import load_rulebook

    rules = load_rulebook(package_data_dir("rules"))
    described = " ".join(c.syntax for c in rules.commands.commands)
    assert {n for n in HANDLERS if f"#{n}" not in described} == set()
    help_text = Renderer(package_data_dir("templates"), {"rules": rules}).render_template(
        "_commands.txt").strip()
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"```\n{help_text}\n```" in readme
    aide = next(m for kind, m in sent if kind == "director_confirmation"
                and "cette aide" in _parts(m)[0])
    assert help_text.splitlines()[1] in _parts(aide)[0]




def test_no_email_nor_document_shows_an_english_state_word(
        sent: list[tuple[str, Any]], demo: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The states people read come from the one French vocabulary (bot.store.models.STATE_LABELS):
    emails, the CSV register, ``status``, ``outbox`` and ``#liste``."""
    found = []
    for kind, message in sent:
        text, html = _parts(message)
        for name, body in (("text", text), ("html", re.sub(r"<[^>]+>", " ", html))):
            words = ENGLISH_STATES.findall(_without_urls(body))
            if words:
                found.append(f"{kind} ({name}): {sorted(set(words))}")
    config = demo / "config.toml"
    output = tmp_path / "registre.csv"
    assert main(["--config", str(config), "export", "--format", "csv",
                 "--output", str(output)]) == 0
    for name, args in (("status", ["status"]), ("outbox", ["outbox"])):
        capsys.readouterr()
        assert main(["--config", str(config), *args]) == 0
        words = ENGLISH_STATES.findall(capsys.readouterr().out)
        if words:
            found.append(f"{name}: {sorted(set(words))}")
    words = ENGLISH_STATES.findall(output.read_text(encoding="utf-8-sig"))
    if words:
        found.append(f"register.csv: {sorted(set(words))}")
    assert found == [], found


def test_every_kind_of_email_reads_well_in_a_browser(env: Any, tmp_path: Path) -> None:
    """Every kind of email the bot can send (``bot.ops.check.EMAIL_KINDS``), produced by a
    month of one organisation's life through the real Dovecot and SMTP servers, with the
    complainants' values full of ``<``, ``>`` and ``&``: each one looked at as above."""
    import datetime as dt

    from bot.ops.check import EMAIL_KINDS
    from bot.procedure import jobs
    from bot.store.models import Outbox
    from tests.test_director import command, register
    from tests.test_time import at, run_job

    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text + "\n[limits]\nmax_attachments = 1\n", encoding="utf-8")
    env.restart()
    env.now = at(dt.date(2026, 9, 16))
    hostile = {"Nom et prénom": HOSTILE_NAME, "Objet de la réclamation": HOSTILE_OBJECT,
               "Description": "Le tarif était < 100 € & > 50 €, on m'a dit <rien>. Voir "
                              "https://www.example.fr/doc?id=" + "0123456789" * 15 + "."}
    first = register(env, **hostile)  # acknowledgement, director_new_complaint
    command(env, first, "#reponse positive\nVotre attestation <oubliée> & relance est "
                        "partie.\n")  # response, director_confirmation
    second = register(env, **dict(hostile, **{"Adresse e-mail": "paul@example.org",
                                              "Vous agissez en tant que": "Particulier"}))
    command(env, second, "#reponse negative\nNous ne pouvons pas.\n")  # mediation_rights
    third = register(env, **dict(hostile, **{"Adresse e-mail": "luc@example.org"}))
    command(env, third, "#prolonger 5 formateur <absent> & remplacé\n")  # interim_notice
    command(env, third, "#inconnue <x> & y\n")  # director_error
    fourth = register(env, **dict(hostile, **{"Adresse e-mail": "ines@example.org"}))
    command(env, fourth, "#requalifier demande <d'information> & devis\n")  # requalified
    [ack] = [c for c in env.smtp.handler.to("luc@example.org") if "Accusé" in c.subject]
    env.append(samples.reply(ack.data, "Merci <vraiment> & à bientôt.",
                             sender="luc@example.org"))  # director_correspondence
    env.append(samples.delivery_report(ack.data, "luc@example.org"))  # director_unreachable
    env.append(samples.free_text(sender="lea@example.org"))  # form_link
    written = dt.datetime(2026, 9, 15, 8, 30, tzinfo=dt.UTC)
    env.append(samples.staff_forward("Léa Martin & fils <lea.martin@example.org>",
                                     "Le tarif <affiché> & payé diffèrent.\n",
                                     written=written))  # forward_confirmation, form_link
    env.append(samples.staff_forward("Mail Delivery System <mailer-daemon@example.org>",
                                     written=written))  # forward_refused
    incomplete = dict(samples.COMPLETE_FORM, **dict(hostile, Description=""))
    env.append(samples.form_submission(dict(incomplete, **{"Adresse e-mail": "zoe@example.org"})))
    env.append(samples.form_submission(dict(incomplete, **{"Adresse e-mail": ""})))
    env.append(samples.free_text(subject=f"Re: {first.subject}", sender="intrus@example.org"))
    env.append(samples.free_text(sender="max@example.org", attachments=[
        ("a.pdf", "application/pdf", samples.pdf_bytes()),
        ("b.pdf", "application/pdf", samples.pdf_bytes())]))  # too_large
    env.smtp.handler.refuse["nadia@example.org"] = "550 5.1.1 <nadia@example.org>: unknown"
    env.append(samples.form_submission(dict(samples.COMPLETE_FORM,
                                            **{"Adresse e-mail": "nadia@example.org"})))
    env.run()
    env.run()  # the refusal's report to the director
    run_job(env, jobs.followup, dt.date(2026, 9, 23))  # satisfaction
    run_job(env, jobs.followup, dt.date(2026, 9, 24))  # ticket_reminder
    run_job(env, jobs.remind, dt.date(2026, 10, 1))  # director_digest
    run_job(env, jobs.monthly_report, dt.date(2026, 10, 1))  # director_monthly_report
    kinds = {row.message_id: row.kind for row in env.query(Outbox)}
    messages = [(kinds[str(c.message["Message-ID"]).strip()], c.message)
                for c in env.smtp.handler.received]
    assert set(EMAIL_KINDS) - {kind for kind, _ in messages} == set()
    assert look_at(messages, tmp_path / "screens") == []



def test_plain_text_is_wrapped_and_flowed_with_its_signature_separator(
        sent: list[tuple[str, Any]]) -> None:
    """RFC 3676: lines of 72 columns (and the soft break's space) in any client, joined
    again to fit a phone by those that read format=flowed; «-- » before the footer."""
    for kind, message in sent:
        part = message.get_body(("plain",))
        assert part.get_param("format") == "flowed" and part.get_param("delsp") == "no", kind
        raw = part.get_content()
        lines = raw.split("\n")
        assert all(len(line) <= 78 or " " not in line.strip() for line in lines), kind
        assert "-- " in lines, kind


def test_french_typography_keeps_marks_with_their_words(sent: list[tuple[str, Any]]) -> None:
    """A non-breaking space before «: ; ! ? »» and after «««, inside phone numbers and
    before units, in every email's text and HTML as written: no line of a phone begins
    with «: son objet…»; the tags and links of the HTML are left alone."""
    import datetime as dt
    import re

    from bot.core.clock import date_fr
    from bot.core.text import typographie, typographie_html

    breakable = re.compile(r"[^\s] [:;!?»]|« ")
    for kind, message in sent:
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert not breakable.search(text), (kind, breakable.search(text))
        body = re.sub(r"<[^>]*>", "", html)
        assert not breakable.search(body), (kind, breakable.search(body))
    assert typographie("Tél. 01 23 45 67 89 ; 100,0 % à 10 h 15") == (
        "Tél. 01\u00a023\u00a045\u00a067\u00a089\u00a0; 100,0\u00a0% à 10\u00a0h\u00a015")
    assert typographie_html('<a href="mailto:x?subject=Re : y">Objet : z</a>') == (
        '<a href="mailto:x?subject=Re : y">Objet\u00a0: z</a>')
    assert date_fr(dt.date(2026, 12, 1)) == "mardi 1er décembre 2026"
