"""The web form and the follow-up page over HTTP (Starlette's test client, the in-memory
mailbox and mail server, the tests' database): every protection the issue names, each in
its own test, and the form's whole path into the register."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from bot.core.states import ComplaintStatus
from bot.store.models import Complaint, Contact, Event, Inbound, Outbox
from bot.testing import samples
from bot.web.guard import SECURITY_HEADERS
from bot.web.server import make_web_app
from tests.conftest import MemoryEnv

PUBLIC = "https://reclamations.example.fr"
WEB = (f'[web]\npublic_url = "{PUBLIC}"\nsubmissions_per_ip_per_hour = 6\n'
       'submissions_per_address_per_day = 3\n'
       '[limits]\nmax_message_bytes = 2000000\nmax_attachments = 3\n'
       'max_attachment_bytes = 1000000\n')
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;"\''

COMPLETE = {
    "client_name": "Jeanne Martin", "email": "jeanne.martin@example.org",
    "phone": "06 12 34 56 78", "category": "stagiaire", "object": "Attestation non reçue",
    "product": "Convention n° 2026-114", "training_actions": "Sophrologie (septembre)",
    "facts_date": "2026-09-30", "description": "Toujours pas d'attestation.",
    "expected_solution": "La recevoir.", "gdpr_consent": "Oui", "acting_as": "particulier",
}


class Web:
    """A browser's view of ``reclambot serve`` for one organisation."""

    def __init__(self, env: MemoryEnv) -> None:
        self.env = env
        self.client = TestClient(make_web_app(env.app, lambda: env.sink),
                                 base_url="https://testserver")

    def token(self, path: str = "/reclamation") -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        return found.group(1)

    def submit(self, values: dict[str, str] | None = None, *, token: str | None = None,
               files: Any = None, path: str = "/reclamation", **extra: str) -> Any:
        data = {"csrf": self.token(path) if token is None else token, "form_version": "2026-01",
                **(COMPLETE if values is None else values), **extra}
        return self.client.post("/reclamation", data=data, files=files, follow_redirects=False)

    def complaints(self) -> list[Complaint]:
        return self.env.query(Complaint)


@pytest.fixture()
def web(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    env = MemoryEnv(tmp_path, database_url, extra=WEB)
    yield Web(env)
    env.close()


def test_a_conforming_form_enters_the_register_as_an_emailed_one(web: Web) -> None:
    answer = web.submit()
    assert answer.status_code == 303
    [complaint] = web.complaints()
    assert answer.headers["location"].startswith(f"/suivi/{complaint.number}.")
    page = web.client.get(answer.headers["location"])
    assert page.status_code == 200 and complaint.number in page.text
    assert "est enregistrée" in page.text and complaint.answer_due is not None
    # The same handlers: registered, acknowledged, the director told, through the outbox.
    assert [e.kind for e in web.env.query(Event)][:2] == ["registered", "acknowledged"]
    kinds = sorted(r.kind for r in web.env.query(Outbox))
    assert kinds == ["acknowledgement", "director_new_complaint"]
    [ack] = web.env.sink.to("jeanne.martin@example.org")  # sent at once, by the web process
    follow = f"{PUBLIC}/suivi/{web.env.app.tokens.follow_up(complaint.number)}"
    assert follow in ack.text and f'href="{follow}"' in ack.html
    # Its row says why: the web form's own rule, with the client's address.
    [row] = web.env.query(Inbound)
    assert row.action == "submission" and row.rules[0]["rule"] == "web_form"
    assert "testclient" in row.rules[0]["reason"]
    # Its dossier keeps the submission as an .eml, with its time and the client.
    [eml] = (web.env.app.dossiers.folder(complaint.number) / "messages").glob("*.eml")
    text = eml.read_text(encoding="utf-8", errors="replace")
    assert "X-Reclambot-Web-Form: testclient; submission=" in text and "received=" in text
    assert "Description : Toujours pas d'attestation." in text


def test_an_incomplete_form_comes_back_with_its_errors_and_registers_nothing(web: Web) -> None:
    values = {**COMPLETE, "email": "pas-une-adresse", "description": "", "gdpr_consent": ""}
    answer = web.submit(values)
    assert answer.status_code == 422
    assert "3 points à corriger" in answer.text
    for key in ("email", "description", "gdpr_consent"):
        assert f'href="#champ-{key}"' in answer.text  # summarised at the top, linked
        assert f'id="erreur-{key}"' in answer.text  # and next to its field
        assert re.search(rf'id="{key}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*'
                         rf'id="{key}"', answer.text) or key == "gdpr_consent"
    assert 'value="Jeanne Martin"' in answer.text  # what she typed is kept
    assert web.complaints() == [] and web.env.query(Inbound) == []
    assert web.env.sink.sent == []


def test_missing_or_wrong_csrf_token_is_refused(web: Web) -> None:
    """CSRF: a post not made from a page this server rendered registers nothing."""
    good = web.token()
    nonce, issued, submission, signature = good.split(".")
    for token in (f"{nonce}.{issued}.{submission}.{'a' * len(signature)}",
                  f"{nonce}.{issued}.{'0' * 32}.{signature}", "n'importe quoi"):
        assert web.submit(token=token).status_code == 403
    other = TestClient(web.client.app, base_url="https://testserver")  # no cookie
    assert other.post("/reclamation", data={"csrf": good, **COMPLETE},
                      follow_redirects=False).status_code == 403
    missing = web.client.post("/reclamation", data=COMPLETE, follow_redirects=False)
    assert missing.status_code == 403
    assert web.complaints() == []


def test_an_expired_page_is_refused(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    token = web.token()
    import time

    later = time.time() + 5 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert web.submit(token=token).status_code == 403


def test_the_honeypot_filled_is_refused_politely(web: Web) -> None:
    answer = web.submit(site_web="https://spam.example")
    assert answer.status_code == 400 and "n'a pas pu être accepté" in unescape(answer.text)
    assert web.complaints() == []


def test_the_rate_limits_answer_a_french_page(web: Web) -> None:
    """Per client address (6 an hour here) and per complainant's address (3 a day)."""
    for index in range(3):
        assert web.submit({**COMPLETE, "object": f"objet {index}"}).status_code == 303
    limited = web.submit({**COMPLETE, "object": "encore"})
    assert limited.status_code == 429 and "Trop d'envois" in unescape(limited.text)
    for index in range(2):
        other = {**COMPLETE, "email": f"autre{index}@example.org"}
        assert web.submit(other).status_code == 303
    assert web.submit({**COMPLETE, "email": "x@example.org"}).status_code == 429
    assert len(web.complaints()) == 5


def test_an_oversized_body_is_refused(web: Web) -> None:
    limits = web.env.app.config.limits
    big = b"x" * (limits.max_message_bytes + 300 * 1024)
    answer = web.submit(files=[("pieces", ("gros.pdf", big, "application/pdf"))])
    assert answer.status_code == 413 and "trop volumineux" in answer.text
    assert web.complaints() == []


def test_an_oversized_attachment_is_named_next_to_its_field(web: Web) -> None:
    limits = web.env.app.config.limits
    big = b"%PDF" + b"x" * limits.max_attachment_bytes
    answer = web.submit(files=[("pieces", ("contrat.pdf", big, "application/pdf"))])
    assert answer.status_code == 422
    assert 'id="erreur-pieces"' in answer.text and "contrat.pdf" in answer.text
    assert web.complaints() == []


def test_attachments_within_limits_join_the_dossier_under_safe_names(web: Web) -> None:
    files = [("pieces", ("../../etc/passwd", b"%PDF-1.4 attestation", "application/pdf")),
             ("pieces", ("photo été.jpg", b"\xff\xd8\xff", "image/jpeg"))]
    assert web.submit(files=files).status_code == 303
    [complaint] = web.complaints()
    folder = web.env.app.dossiers.folder(complaint.number)
    names = sorted(p.name for p in (folder / "pieces-jointes").iterdir())
    assert len(names) == 2 and all("/" not in n and ".." not in n for n in names)
    assert not (web.env.app.dossiers.root.parent / "etc").exists()


def test_a_tampered_reference_is_refused(web: Web) -> None:
    """Nobody can attach a form to someone else's first contact."""
    web.env.deliver(samples.free_text(sender="jeanne.martin@example.org"))
    [contact] = web.env.query(Contact)
    signature = web.env.app.tokens.sign("ref", contact.reference)
    good = f"/reclamation?ref={contact.reference}&sig={signature}"
    assert contact.reference in web.client.get(good).text
    for bad in (f"/reclamation?ref=CT-AAAAAAAA&sig={signature}",
                f"/reclamation?ref={contact.reference}&sig={'b' * 26}",
                f"/reclamation?ref={contact.reference}"):
        page = web.client.get(bad)
        assert page.status_code == 400 and "pas valable" in page.text
    forged = web.submit(reference="CT-AAAAAAAA", reference_sig=signature)
    assert forged.status_code == 400 and web.complaints() == []
    # The signed link attaches it: the complaint follows its first contact.
    assert web.submit(path=good, reference=contact.reference,
                      reference_sig=signature).status_code == 303
    [complaint] = web.complaints()
    assert complaint.initial_reference == contact.reference


def test_the_form_link_email_points_to_the_served_form_signed(web: Web) -> None:
    web.env.deliver(samples.free_text(sender="jeanne.martin@example.org"))
    [contact] = web.env.query(Contact)
    [link_email] = web.env.sink.to("jeanne.martin@example.org")
    signature = web.env.app.tokens.sign("ref", contact.reference)
    assert f"{PUBLIC}/reclamation?ref={contact.reference}&sig={signature}" in link_email.text


def test_an_html_payload_in_every_field_is_rendered_inert(web: Web) -> None:
    """What a complainant typed is never served back as markup: on the form shown again,
    on the follow-up page, and in the director's email."""
    hostile = {key: HOSTILE for key in COMPLETE}
    again = web.submit(hostile)
    assert again.status_code == 422
    assert "<script>" not in again.text and "<img src=x" not in again.text
    assert "&lt;script&gt;" in again.text
    values = {**COMPLETE, **{k: HOSTILE for k in ("client_name", "object", "product",
                                                  "training_actions", "description",
                                                  "expected_solution", "facts_date")}}
    answer = web.submit(values)
    assert answer.status_code == 303
    page = web.client.get(answer.headers["location"])
    assert "<script>" not in page.text and "onerror=alert" not in page.text.replace(
        "onerror=alert(1)&gt;", "")
    [notice] = web.env.sink.to("direction@example.fr")
    assert "<script>" not in notice.html and "&lt;script&gt;" in notice.html


def test_a_double_submit_registers_once(web: Web) -> None:
    token = web.token()
    first = web.submit(token=token)
    second = web.submit(token=token)  # a double click, a reload of the post
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert len(web.complaints()) == 1
    assert len(web.env.sink.to("jeanne.martin@example.org")) == 1


def test_the_follow_up_page_shows_its_complaint_and_nothing_else(web: Web) -> None:
    web.submit()
    web.submit({**COMPLETE, "email": "paul@example.net", "object": "Autre objet"})
    first, second = web.complaints()
    with web.env.app.transaction() as session:
        session.execute(update(Complaint).where(Complaint.id == first.id).values(
            status=ComplaintStatus.ANSWERED, response_text="Voici notre réponse.",
            response_date=dt.date(2026, 12, 4)))
        session.add(Event(at=dt.datetime(2026, 12, 4), kind="note", origin="",
                          detail={"text": "note interne secrète"}, complaint_id=first.id))
    page = web.client.get(f"/suivi/{web.env.app.tokens.follow_up(first.number)}").text
    assert first.number in page and "répondue" in page and "Voici notre réponse." in page
    assert second.number not in page and "paul@example.net" not in page
    assert "note interne" not in page and "Attestation non reçue" not in page


def test_a_tampered_follow_up_token_is_not_found(web: Web) -> None:
    web.submit()
    [complaint] = web.complaints()
    token = web.env.app.tokens.follow_up(complaint.number)
    for bad in (token[:-1] + ("a" if token[-1] != "a" else "b"), f"REC-2026-0002.{token[14:]}",
                "REC-2026-0001", "nothing", web.env.app.tokens.token(complaint.number)):
        page = web.client.get(f"/suivi/{bad}")
        assert page.status_code == 404 and "introuvable" in page.text


def test_a_purged_complaint_answers_410_in_french(web: Web) -> None:
    web.submit()
    [complaint] = web.complaints()
    with web.env.app.transaction() as session:
        session.execute(update(Complaint).values(purged_at=dt.datetime(2028, 1, 1)))
    page = web.client.get(f"/suivi/{web.env.app.tokens.follow_up(complaint.number)}")
    assert page.status_code == 410 and "effacées" in page.text


def test_every_page_carries_strict_security_headers(web: Web) -> None:
    for path in ("/reclamation", "/suivi/x", "/static/reclambot.css", "/nulle-part"):
        response = web.client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
        assert "script-src" not in response.headers["content-security-policy"]
    assert "strict-transport-security" in web.client.get("/reclamation").headers
    assert "<script" not in web.client.get("/reclamation").text  # works without JavaScript


def test_the_form_is_the_version_in_force_with_a_label_for_every_field(web: Web) -> None:
    page = web.client.get("/reclamation").text
    version = web.env.app.rulebook.current_form(dt.date.today())
    assert f"version {version.id}" in page
    for field in version.fields:
        if field.key in ("form_version", "reference"):
            continue
        if field.type == "choice":
            assert f"<legend>{field.label}" in page
            assert all(f'for="{field.key}-{i}"' in page for i in range(1, len(field.choices) + 1))
        else:
            assert f'<label for="{field.key}">' in page, field.key
        if field.help:
            assert f'id="aide-{field.key}"' in page
    assert 'lang="fr"' in page and 'name="viewport"' in page


def test_the_exported_form_posts_here_and_is_confirmed_once(web: Web, tmp_path: Path) -> None:
    from bot.web.export import export_form

    path = export_form(web.env.app, tmp_path / "formulaire.html")
    html = path.read_text(encoding="utf-8")
    assert f'action="{PUBLIC}/reclamation"' in html and 'name="csrf"' not in html
    for key in COMPLETE:
        assert f'name="{key}"' in html
    posted = web.client.post("/reclamation", data={"origine": "export", **COMPLETE},
                             follow_redirects=False)
    assert posted.status_code == 200 and "pas encore enregistrée" in posted.text
    assert 'value="Jeanne Martin"' in posted.text and web.complaints() == []


def test_the_web_process_never_reads_the_mailbox_password(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          database_url: str) -> None:
    from bot.config import load_config
    from tests.conftest import write_config

    config = write_config(tmp_path, imap_port=1, imap_user="u", smtp_port=1,
                          database_url=database_url, extra=WEB)
    monkeypatch.delenv("RECLAMBOT_TEST_IMAP_PASSWORD", raising=False)
    loaded = load_config(config, mailbox_secrets=False)
    assert loaded.imap is not None and not loaded.imap.password
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="RECLAMBOT_TEST_IMAP_PASSWORD"):
        load_config(config)


def test_a_body_that_does_not_say_its_length_is_cut_at_the_limit(web: Web) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"--x\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n"
        for _ in range(40):
            yield b"y" * 65536

    answer = web.client.post("/reclamation", content=chunks(),
                             headers={"content-type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413
    assert web.complaints() == []


def test_the_same_page_posted_twice_at_once_registers_once(web: Web) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = web.token()
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: web.submit(token=token), range(2)))
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]
    assert len(web.complaints()) == 1 and len(web.env.query(Inbound)) == 1


def test_every_email_that_offers_the_form_offers_the_served_one(web: Web) -> None:
    incomplete = {**samples.COMPLETE_FORM, "Description": ""}
    web.env.deliver(samples.form_submission(incomplete))
    [request] = web.env.sink.to("jeanne.martin@example.org")
    assert f"{PUBLIC}/reclamation" in request.text and "www.example.fr" not in request.text


def test_security_forwarded_for_cannot_choose_the_rate_limit_key(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default no proxy is believed: a client's own X-Forwarded-For changes nothing.
    Behind a trusted proxy (which appends the address it saw), the key is the right-most
    address that is not a trusted proxy's, whatever the client put before it."""
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    for trusted, client in (("", ("203.0.113.7", 40000)),
                            ('trusted_proxies = ["127.0.0.1"]\n', ("127.0.0.1", 40000))):
        directory = tmp_path / ("proxy" if trusted else "direct")
        directory.mkdir()
        env = MemoryEnv(directory, database_url if not trusted else
                        f"sqlite:///{directory / 'register.sqlite3'}",
                        extra=WEB.replace("[web]\n", f"[web]\n{trusted}"))
        try:
            web = Web(env)
            web.client = TestClient(make_web_app(env.app, lambda: env.sink),  # noqa: B023
                                    base_url="https://testserver", client=client)
            answers = []
            for index in range(8):
                spoofed = {"X-Forwarded-For": f"198.51.100.{index}"
                           + (", 203.0.113.7" if trusted else "")}
                web.client.headers.update(spoofed)
                answers.append(web.submit({**COMPLETE, "email": f"p{index}@example.org",
                                           "object": f"objet {index}"}).status_code)
            assert answers == [303] * 6 + [429] * 2, (trusted, answers)
        finally:
            env.close()


def test_security_the_csrf_cookie_is_the_servers_own(web: Web) -> None:
    """Issued and signed by the server, ``__Host-`` behind HTTPS, ``SameSite=Lax``,
    ``HttpOnly``: a cookie a page or a sibling site sets is never adopted as the nonce."""
    page = web.client.get("/reclamation")
    header = page.headers["set-cookie"]
    assert header.startswith("__Host-reclambot_csrf=")
    for flag in ("HttpOnly", "Secure", "Path=/", "SameSite=lax"):
        assert flag.lower() in header.lower(), flag
    assert "domain=" not in header.lower()
    # A made-up 32-character nonce in the cookie is replaced, not adopted.
    chosen = "a" * 32
    forged = TestClient(web.client.app, base_url="https://testserver",
                        cookies={"__Host-reclambot_csrf": chosen})
    answer = forged.get("/reclamation")
    assert not answer.headers["set-cookie"].split("=", 1)[1].startswith(chosen + ";")
    token = re.search(r'name="csrf" value="([^"]+)"', answer.text).group(1)  # type: ignore[union-attr]
    assert not token.startswith(chosen)
    forged.cookies.set("__Host-reclambot_csrf", chosen)
    refused = forged.post("/reclamation", data={"csrf": f"{chosen}.1.2.3", **COMPLETE},
                          follow_redirects=False)
    assert refused.status_code == 403 and web.complaints() == []


def test_security_a_page_posted_again_with_other_content_is_refused(web: Web) -> None:
    token = web.token()
    assert web.submit(token=token).status_code == 303
    other = web.submit({**COMPLETE, "description": "Tout autre chose."}, token=token)
    assert other.status_code == 409 and "déjà servi" in unescape(other.text)
    [complaint] = web.complaints()
    assert complaint.description == COMPLETE["description"]
    assert web.submit(token=token).status_code == 303  # the same content: the same page


@pytest.mark.parametrize("where", ["sig", "suivi", "cookie"])
def test_a_signature_that_is_not_ascii_is_refused_in_french(web: Web, where: str) -> None:
    if where == "sig":
        page = web.client.get("/reclamation?ref=CT-AAAAAAAA&sig=é" + "a" * 25)
        assert page.status_code == 400
    elif where == "suivi":
        page = web.client.get("/suivi/REC-2026-0001.é" + "a" * 25)
        assert page.status_code == 404
    else:
        token = web.token()
        web.client.cookies.clear()
        cookie = ("__Host-reclambot_csrf=" + "b" * 32 + ".é" + "a" * 25).encode()
        page = web.client.post("/reclamation", data={"csrf": token, **COMPLETE},
                               headers={b"cookie": cookie}, follow_redirects=False)  # type: ignore[dict-item]
        assert page.status_code == 403
    assert "<html" in page.text and "Traceback" not in page.text


def test_an_error_inside_answers_a_french_page_and_one_line_of_log(
        web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import bot.web.server

    def broken(*args: object) -> None:
        raise RuntimeError("secret du réclamant : ne pas journaliser")

    monkeypatch.setattr(bot.web.server, "register", broken)
    with caplog.at_level(logging.INFO):
        answer = web.submit()
    assert answer.status_code == 500 and "Erreur du serveur" in unescape(answer.text)
    assert "Traceback" not in answer.text and "RuntimeError" not in answer.text
    records = [r for r in caplog.records if r.name == "bot.web.guard"]
    assert [r.getMessage() for r in records] == ["web: RuntimeError on POST /reclamation"]
    assert not [r for r in caplog.records if r.exc_info]
    assert "ne pas journaliser" not in caplog.text


@pytest.mark.parametrize("address", ["josé@exemple.fr", "jeanne@exémple.fr",
                                     "jeanne@xn--exmple-cva.fr"])
def test_an_international_address_registers_from_the_web_form(web: Web, address: str) -> None:
    """No bare 500: the record of the submission writes an accented address in UTF-8."""
    answer = web.submit({**COMPLETE, "email": address})
    assert answer.status_code == 303, unescape(answer.text)[:300]
    [complaint] = web.complaints()
    assert complaint.client_email in ("josé@exemple.fr", "jeanne@exémple.fr")


@pytest.mark.parametrize("kind", ["message/delivery-status", "message/rfc822",
                                  "multipart/mixed", "text/plain; x=\"é\"", "é/è", ""])
def test_a_file_of_any_declared_type_is_kept_as_a_file(web: Web, kind: str) -> None:
    """A file the browser says is a delivery report (a bare 500 before), an email, or
    a type that is no type: registered, the file kept as bytes, nothing made of it."""
    files = [("pieces", ("rapport.txt", b"Reporting-MTA: dns; example.org\r\n", kind))]
    answer = web.submit(files=files)
    assert answer.status_code == 303, unescape(answer.text)[:200]
    [complaint] = web.complaints()
    folder = web.env.app.dossiers.folder(complaint.number)  # type: ignore[attr-defined]
    kept = [p for p in folder.rglob("*") if p.is_file() and "rapport" in p.name]
    assert kept and kept[0].read_bytes() == b"Reporting-MTA: dns; example.org\r\n"


def test_the_follow_up_page_says_what_each_state_means(web: Web, tmp_path: Path) -> None:
    """Received (what to do to add to it), answered (the REP number, the mediator where
    she was told of him), closed (no «compléter»), extended (the new deadline and why)."""
    from playwright.sync_api import sync_playwright

    from tests.test_emails import CHROMIUM

    web.submit()
    [complaint] = web.complaints()
    url = f"/suivi/{web.env.app.tokens.follow_up(complaint.number)}"
    pages = {"reçue": web.client.get(url).text}
    with web.env.app.transaction() as session:
        session.execute(update(Complaint).where(Complaint.id == complaint.id).values(
            answer_due_initial=complaint.answer_due,
            answer_due=complaint.answer_due + dt.timedelta(days=7),
            extension_reason="formateur absent"))
    pages["prolongée"] = web.client.get(url).text
    with web.env.app.transaction() as session:
        session.execute(update(Complaint).where(Complaint.id == complaint.id).values(
            status=ComplaintStatus.ANSWERED, response_text="Nous ne pouvons pas.",
            response_number="REP-2026-0001", response_date=dt.date(2026, 12, 4),
            mediation_sent_at=dt.datetime(2026, 12, 4, 10)))
    pages["répondue"] = web.client.get(url).text
    with web.env.app.transaction() as session:
        session.execute(update(Complaint).where(Complaint.id == complaint.id).values(
            status=ComplaintStatus.CLOSED, closed_at=dt.datetime(2026, 12, 10, 10)))
    pages["close"] = web.client.get(url).text
    assert "Pour compléter votre réclamation" in pages["reçue"]
    assert "Délai prolongé" in pages["prolongée"] and "formateur absent" in pages["prolongée"]
    assert "REP-2026-0001" in pages["répondue"] and "médiateur" in pages["répondue"]
    assert "Pour réagir à notre réponse" in pages["répondue"]
    assert "Cette réclamation est close" in pages["close"] and "compléter" not in pages["close"]
    assert "AME CONSO" in pages["close"]  # the mediator stays named once she was told
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 375, "height": 800})
        for state, html in pages.items():
            page.set_content(html)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, state
            page.screenshot(path=str(tmp_path / f"suivi-{state}-375.png"), full_page=True)
        browser.close()
