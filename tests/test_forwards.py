"""A complaint that reached a trainer or the secretariat first, forwarded to the complaints
mailbox: the procedure starts for the person who wrote it.

Through the real Dovecot and test SMTP servers: the form link goes to the enclosed
author, dated from her message, the register's mode says who passed it on, the staff
member is told, the dossier holds the original. The clients' own layouts are in
``tests/data/forwards`` (read in-process by ``test_each_clients_forward_is_read``, and
through the mailbox by ``test_forwards_of_every_client_reach_their_author``).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import tomllib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.intake.forwarded import NO_AUTHOR, Original, read_original
from bot.intake.message import parse_message
from bot.store.models import Contact, Event
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, STAFF, BotEnv

LEA = "lea.martin@example.org"
WRITTEN = dt.datetime(2026, 12, 3, 9, 12, tzinfo=dt.UTC)  # 10:12 in Paris
FIXTURES = Path(__file__).parent / "data" / "forwards"


def _index() -> list[dict[str, Any]]:
    path = FIXTURES / "index.toml"
    if not path.exists():
        return []
    return list(tomllib.loads(path.read_text(encoding="utf-8"))["forward"])


def only_to(env: BotEnv, *addresses: str) -> dict[str, list[Any]]:
    """What the test SMTP server received, by recipient; asserting nobody else got any."""
    got: dict[str, list[Any]] = {}
    for captured in env.smtp.handler.received:
        for recipient in captured.recipients:
            got.setdefault(recipient, []).append(captured)
    assert set(got) <= set(addresses), sorted(got)
    return got


def test_a_forward_from_staff_starts_the_procedure_for_its_author(env: BotEnv) -> None:
    """The trainee hears from the complaints service; the trainer is not the complainant."""
    env.append(samples.staff_forward(written=WRITTEN))
    env.run()
    [contact] = env.contacts()
    assert (contact.sender_email, contact.sender_name) == (LEA, "Léa Martin")
    assert contact.received_at == WRITTEN.replace(tzinfo=None)  # her message's date
    assert contact.mode.startswith(f"Courriel, transmis par Sophie Accueil ({STAFF}) le ")
    got = only_to(env, LEA, STAFF)
    [link] = got[LEA]
    assert "transmis au service réclamations" in link.text()
    assert "adressé à Sophie Accueil" in link.text() and "jeudi 3 décembre 2026" in link.text()
    assert f"ref={contact.reference}" in link.text()
    [confirmation] = got[STAFF]
    assert contact.reference in confirmation.subject
    assert "jeudi 3 décembre 2026" in confirmation.text() and LEA in confirmation.text()
    names = env.app.dossiers.names(contact.reference)
    assert any(n.startswith("messages/") for n in names)  # the forward, the original inside
    # She fills in the form: the register says when and how it started.
    env.append(samples.form_submission({**samples.COMPLETE_FORM, "Adresse e-mail": LEA,
                                        "Référence": contact.reference}))
    env.run()
    [complaint] = env.complaints()
    assert complaint.initial_contact_at == WRITTEN.replace(tzinfo=None)
    assert complaint.initial_mode == f"{contact.mode} (réf. {contact.reference})"


def test_an_attached_forward_threads_the_form_link_on_her_message(env: BotEnv) -> None:
    raw = samples.staff_forward(attached=True, written=WRITTEN, attachments=[
        ("convocation.pdf", "application/pdf", samples.pdf_bytes())])
    env.append(raw)
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == LEA and contact.message_id
    [link] = only_to(env, LEA, STAFF)[LEA]
    assert link.message["In-Reply-To"] == contact.message_id  # threaded on her message
    names = env.app.dossiers.names(contact.reference)
    assert any(n.endswith("convocation.pdf") for n in names)
    assert any(n.endswith("-message-joint.eml") for n in names)  # her message, whole


def test_transmettre_with_a_scanned_letter(env: BotEnv) -> None:
    raw = samples._message(
        sender=f"Sophie Accueil <{STAFF}>", to=BOT, subject="Courrier de M. Dupont",
        text="#transmettre j.dupont@example.net 2026-12-01 lettre recommandée\n"
             "Reçue ce matin à l'accueil.\n",
        attachments=[("scan.pdf", "application/pdf", samples.pdf_bytes())])
    env.append(raw)
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == "j.dupont@example.net"
    assert contact.received_at.date() == dt.date(2026, 12, 1)
    assert contact.mode.startswith("lettre recommandée, transmis par Sophie Accueil")
    got = only_to(env, "j.dupont@example.net", STAFF)
    assert "Votre courrier du mardi 1er décembre 2026" in got["j.dupont@example.net"][0].text()
    assert any(n.endswith("scan.pdf") for n in env.app.dossiers.names(contact.reference))


def test_a_forwarded_complete_form_is_registered_under_its_author(env: BotEnv) -> None:
    form = {**samples.COMPLETE_FORM, "Nom et prénom": "Léa Martin", "Adresse e-mail": LEA}
    env.append(samples.staff_forward(body=samples.form_text(form), written=WRITTEN))
    env.run()
    [complaint] = env.complaints()
    assert complaint.client_email == LEA and complaint.client_name == "Léa Martin"
    assert complaint.initial_contact_at == WRITTEN.replace(tzinfo=None)
    assert "transmis par Sophie Accueil" in complaint.initial_mode
    got = only_to(env, LEA, STAFF, DIRECTOR)
    assert [c.subject for c in got[LEA] if "Accusé" in c.subject]  # acknowledged, to her
    assert "pris en compte" in got[STAFF][0].text()


@pytest.mark.parametrize(("raw", "reason"), [
    (samples.staff_forward("Mail Delivery System <mailer-daemon@example.org>"), "robot"),
    (samples.staff_forward(f"Claire Durand <{DIRECTOR}>"), "est de l'équipe"),
    (samples.staff_forward("Léa Martin"), "ne porte pas d'adresse"),
    (samples._message(sender=STAFF, to=BOT, subject="Divers", text="#transmettre\nVoir.\n"),
     "aucun message transféré"),
    (samples._message(sender=STAFF, to=BOT, subject="Lettre",
                      text="#transmettre lea.martin@example.org\n"), "aucune pièce jointe"),
], ids=["robot inside", "staff inside", "no address", "nothing forwarded", "letter unscanned"])
def test_security_a_forward_naming_nobody_to_write_to_is_refused_to_its_sender_only(
        env: BotEnv, raw: bytes, reason: str) -> None:
    """Nobody else can make the bot write to a third party: what staff pass on must name
    a person; else only the staff member hears, with the reason."""
    env.append(raw)
    env.run()
    assert env.contacts() == []
    [refusal] = only_to(env, STAFF)[STAFF]
    assert "Transmission refusée" in refusal.subject and reason in refusal.text()


def test_security_a_strangers_forward_makes_her_the_contact(env: BotEnv) -> None:
    """A forward from an address that is not staff is handled as before: its sender is
    the contact, and the enclosed author is never written to."""
    env.append(samples.staff_forward(sender="Mallory <mallory@example.com>"))
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == "mallory@example.com" and contact.mode == ""
    only_to(env, "mallory@example.com")


def test_security_a_forged_staff_forward_is_refused_where_authentication_is_required(
        env: BotEnv) -> None:
    with env.config_path.open("a") as out:
        out.write('\n[security]\nrequire_authentication_results = true\n'
                  'authserv_id = "mx.example.fr"\n')
    env.restart()
    env.append(samples.staff_forward())
    env.run()
    assert env.contacts() == []
    got = only_to(env, DIRECTOR)  # an alert: neither the author nor the "staff" sender
    assert "pas d'en-tête Authentication-Results" in got[DIRECTOR][0].text()


def test_a_forward_of_a_thread_already_known_joins_it(env: BotEnv) -> None:
    env.append(samples.staff_forward(attached=True))
    env.run()
    [contact] = env.contacts()
    env.append(samples.staff_forward(note="Elle a rappelé, même sujet."))
    env.run()
    assert [c.reference for c in env.contacts()] == [contact.reference]  # no second one
    got = only_to(env, LEA, STAFF, DIRECTOR)
    assert len(got[LEA]) == 1  # one form link only
    assert "déjà suivi" in got[STAFF][-1].subject
    assert "transmis par" in got[DIRECTOR][-1].text()
    kinds = [e.kind for e in env.query(Event, Event.contact_id == contact.id)]
    assert kinds == ["initial_contact", "correspondence"]


def test_the_daily_limit_of_automatic_answers_applies_to_the_enclosed_author(
        env: BotEnv) -> None:
    limit = env.app.rulebook.auto_replies_per_address_per_day
    for index in range(limit + 1):
        # Each one a new complaint, closed between (no open contact to join).
        env.append(samples.staff_forward(body=f"Réclamation n° {index}.\n"))
        env.run()
        with env.app.transaction() as session:
            for contact in session.query(Contact):
                contact.status = "abandoned"
    got = only_to(env, LEA, STAFF)
    assert len(got[LEA]) == limit
    assert "n'a pas été envoyé" in got[STAFF][-1].text() and "prévenez" in got[STAFF][-1].text()


@pytest.mark.parametrize("case", _index(), ids=lambda case: case["file"])
def test_each_clients_forward_is_read(case: dict[str, Any]) -> None:
    """The clients' layouts, as they write them: the author, the date, the text."""
    msg = parse_message((FIXTURES / case["file"]).read_bytes())
    original = read_original(msg, ("utf_8", "cp1252"))
    if not case["author"]:
        assert original == NO_AUTHOR
        return
    assert isinstance(original, Original), original
    assert (original.address, original.name) == (case["author"], case["name"])
    written = dt.datetime.fromisoformat(case["date"]).astimezone(dt.UTC).replace(tzinfo=None)
    assert abs(original.date - written) < dt.timedelta(minutes=1), (original.date, written)
    assert original.how == {"inline": "transfert dans le texte",
                            "attached": "message joint"}[case["how"]]
    assert len(original.text.strip()) > 20  # her words, not the header block


@pytest.mark.parametrize("case", [c for c in _index() if c["author"]],
                         ids=lambda case: case["file"])
def test_forwards_of_every_client_reach_their_author(env: BotEnv, case: dict[str, Any]
                                                    ) -> None:
    env.append((FIXTURES / case["file"]).read_bytes())
    env.run()
    got = only_to(env, case["author"], STAFF, DIRECTOR)
    [contact] = env.contacts()
    assert contact.sender_email == case["author"]
    if case.get("form"):
        [complaint] = env.complaints()
        assert complaint.client_email == case["author"]
        assert "transmis par" in complaint.initial_mode
    else:
        assert "transmis au service réclamations" in got[case["author"]][0].text()
    assert contact.reference in got[STAFF][0].subject


def test_a_forward_of_a_message_weeks_old_is_not_abandoned_at_once(env: BotEnv) -> None:
    """The initial date is the author's; the time she has to fill in the form runs from
    the day the bot wrote to her (a first contact is abandoned after 30 days)."""
    from bot.procedure import jobs
    from tests.test_time import at, run_job

    env.now = at(dt.date(2026, 12, 7))
    env.append(samples.staff_forward(written=dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)))
    env.run()
    run_job(env, jobs.followup, dt.date(2026, 12, 8))
    [contact] = env.contacts()
    assert (contact.status, contact.received_at.date()) == ("open", dt.date(2026, 10, 1))
    run_job(env, jobs.followup, dt.date(2027, 1, 7))
    [contact] = env.contacts()
    assert contact.status == "abandoned"


def test_security_a_forwarded_form_naming_another_address_writes_only_to_its_author(
        env: BotEnv) -> None:
    """A form pasted in a complainant's email with someone else's address is not her
    submission: the form link goes to its author; the other address receives nothing."""
    form = {**samples.COMPLETE_FORM, "Adresse e-mail": "victime@example.com"}
    env.append(samples.staff_forward(body=samples.form_text(form)))
    env.run()
    assert env.complaints() == []
    [contact] = env.contacts()
    assert contact.sender_email == LEA
    got = only_to(env, LEA, STAFF)
    assert "transmis au service réclamations" in got[LEA][0].text()


def test_a_forwarded_incomplete_form_asks_its_author_for_what_is_missing(env: BotEnv) -> None:
    form = {**samples.COMPLETE_FORM, "Adresse e-mail": LEA, "Description": ""}
    env.append(samples.staff_forward(body=samples.form_text(form), attached=True))
    env.run()
    assert env.complaints() == []
    [contact] = env.contacts()
    [ticket] = env.tickets()
    assert (ticket.complainant_email, ticket.contact_id) == (LEA, contact.id)
    got = only_to(env, LEA, STAFF)
    [request] = got[LEA]
    assert "Description" in request.text()
    assert request.message["In-Reply-To"] == contact.message_id  # on her own message


# --- What an attacker who writes to a trainer can try ---------------------------------
# She cannot write to the complaints mailbox as staff; she can write to a trainer, who
# forwards her email in good faith. Nothing she writes may choose whom the bot writes to.

VICTIM = "victime@example.com"
ATTACKER = "attaquant@evil.example"


def _enclosed(sender: str, body: str = "Bonjour, voici ma réclamation.\n", *,
              date: str | None = "Thu, 03 Dec 2026 10:12:00 +0100",
              headers: dict[str, str] | None = None,
              attachments: list[tuple[str, str, bytes]] | None = None) -> EmailMessage:
    inner = EmailMessage(policy=email.policy.SMTP)
    inner["From"] = sender
    inner["To"] = STAFF
    inner["Subject"] = "Réclamation"
    if date:
        inner["Date"] = date
    inner["Message-ID"] = "<enclosed-1@evil.example>"
    for name, value in (headers or {}).items():
        inner[name] = value
    inner.set_content(body)
    for filename, content_type, data in attachments or []:
        maintype, subtype = content_type.split("/", 1)
        inner.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return inner


def _attached_forward(inner: EmailMessage, note: str = "Pour traitement.") -> bytes:
    outer = EmailMessage(policy=email.policy.SMTP)
    outer["From"] = f"Sophie Accueil <{STAFF}>"
    outer["To"] = BOT
    outer["Subject"] = "TR: RÉCLAMATION"
    outer["Date"] = "Mon, 07 Dec 2026 09:30:00 +0100"
    outer["Message-ID"] = "<forward-1@example.fr>"
    outer.set_content(f"{note}\n")
    outer.add_attachment(inner)
    return outer.as_bytes()


def _nobody_but(env: BotEnv, *addresses: str) -> dict[str, list[Any]]:
    got = only_to(env, *addresses)
    assert VICTIM not in got
    return got


def test_security_an_eml_the_complainant_attached_never_chooses_the_author(
        env: BotEnv) -> None:
    """Her email carries «piece.eml», a message «from» the victim; the trainer forwards
    her email inline (her client carries the attachment along): the author is hers."""
    fake = _enclosed(f"Madame Victime <{VICTIM}>").as_bytes()
    env.append(samples.staff_forward(f"Mallory <{ATTACKER}>", attachments=[
        ("piece.eml", "message/rfc822", fake)]))
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == ATTACKER
    _nobody_but(env, ATTACKER, STAFF)


@pytest.mark.parametrize("sender", [
    f"{VICTIM} <{ATTACKER}>", f"Service: {VICTIM} <{ATTACKER}>", f"Nom, {VICTIM} <{ATTACKER}>",
    f"Nom <{VICTIM}> <{ATTACKER}>", f"Nom [{VICTIM}] <{ATTACKER}>",
    f"{VICTIM} [mailto:{ATTACKER}]", f"Jean\u0085Bcc: {VICTIM} <{ATTACKER}>",
    f"Jean\u2028Bcc: {VICTIM} <{ATTACKER}>",
])
def test_security_an_address_in_the_display_name_never_becomes_the_author(
        env: BotEnv, sender: str) -> None:
    """The «De :» line the trainer's client writes from the attacker's own From: the
    address is the one in brackets at its end, never one she put in her name."""
    env.append(samples.staff_forward(sender))
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == ATTACKER and VICTIM not in contact.sender_name
    [link] = _nobody_but(env, ATTACKER, STAFF)[ATTACKER]
    assert "Bcc" not in str(link.message["To"]) and not link.message.get_all("Bcc")


def test_security_an_unreadable_enclosed_message_is_not_read_for_a_block_inside_it(
        env: BotEnv) -> None:
    """Forwarded as an attachment, her message has no date and a fake «Message
    transféré» block from the victim in its body: refused, the body is never the
    trainer's text."""
    body = (f"-------- Message transféré --------\nSujet : Réclamation\n"
            f"Date : Thu, 3 Dec 2026 10:12:33 +0100\nDe : Madame Victime <{VICTIM}>\n"
            f"Pour : {STAFF}\n\nRemboursez-moi.\n")
    env.append(_attached_forward(_enclosed(f"Mallory <{ATTACKER}>", body, date=None)))
    env.run()
    assert env.contacts() == []
    [refusal] = _nobody_but(env, STAFF)[STAFF]
    assert "pas de date lisible" in refusal.text()


def test_security_a_reply_to_or_a_reused_message_id_never_joins_anothers_thread(
        env: BotEnv) -> None:
    """The victim has an open first contact; the attacker's email, forwarded, names her
    in Reply-To and reuses her Message-ID: a contact of the attacker's own, nothing of
    hers in the victim's dossier."""
    env.append(samples.free_text(sender=f"Madame Victime <{VICTIM}>"))
    env.run()
    [theirs] = env.contacts()
    inner = _enclosed(f"Mallory <{ATTACKER}>", "Voici mon IBAN FR76 EVIL.\n",
                      headers={"Reply-To": VICTIM})
    inner.replace_header("Message-ID", theirs.message_id)
    env.append(_attached_forward(inner))
    env.run()
    contacts = {c.sender_email: c for c in env.contacts()}
    assert set(contacts) == {VICTIM, ATTACKER}
    assert [e.kind for e in env.query(Event, Event.contact_id == theirs.id)] == [
        "initial_contact"]
    assert not [c for c in env.smtp.handler.to(DIRECTOR) if "FR76" in c.text()]


@pytest.mark.parametrize(("raw", "expect"), [
    (samples._message(sender=STAFF, to=BOT, subject="Courrier",
                      text="#transmettre lea.martin@example.org 2025-12-15\n",
                      attachments=[("scan.pdf", "application/pdf", samples.pdf_bytes())]),
     "link"),
    (_attached_forward(_enclosed(f"Léa Martin <{LEA}>", date="Mon, 15 Dec 2025 10:00:00 +0100")),
     "link"),
    (_attached_forward(_enclosed(f"Léa Martin <{LEA}>", date="Fri, 31 Dec 9999 23:00:00 -0500")),
     "pas de date lisible"),
    (_attached_forward(_enclosed(f"Léa Martin <{LEA}>", date="Thu, 31 Dec 2099 10:00:00 +0100")),
     "dans l'avenir"),
    (samples.staff_forward(written=dt.datetime(1999, 12, 1, 9, tzinfo=dt.UTC)), "invraisemblable"),
], ids=["letter before the first form", "message before the first form", "year 9999",
        "year 2099", "year 1999"])
def test_the_date_of_what_is_passed_on_is_plausible_or_refused_never_a_crash(
        env: BotEnv, raw: bytes, expect: str) -> None:
    """A letter of last December forwarded in January gets the form in force today; a
    date no message was written on is refused with the reason, never quarantined."""
    env.append(raw)
    env.run()
    assert all(row.action != "quarantine" for row in env.inbound())
    got = only_to(env, LEA, STAFF)
    if expect == "link":
        assert "2026-01" in got[LEA][0].text()  # the form in force when she fills it in
    else:
        assert LEA not in got and expect in got[STAFF][0].text()


@pytest.mark.parametrize("raw", [
    _attached_forward(_enclosed(f"Léa Martin <{LEA}>")).replace(
        b"Subject: =?utf-8?q?R=C3=A9clamation?=",
        b"Subject: =?utf-8?q?R=C3=A9ponse_automatique_:_Absent_du_bureau?="),
    samples._message(sender=STAFF, to=BOT, subject="Courrier",
                     text="#transmettre mailer-daemon@client.fr\n",
                     attachments=[("scan.pdf", "application/pdf", samples.pdf_bytes())]),
    samples.staff_forward("Sophie <secretariat+test@example.fr>"),
    samples.staff_forward("Boîte <Reclamations+x@Example.fr>"),
], ids=["out-of-office by its subject", "letter from mailer-daemon", "staff +tag", "bot +tag"])
def test_security_a_robot_or_ourselves_passed_on_is_refused(env: BotEnv, raw: bytes) -> None:
    env.append(raw)
    env.run()
    assert env.contacts() == []
    [refusal] = only_to(env, STAFF)[STAFF]
    assert "Transmission refusée" in refusal.subject


def test_security_a_staff_forward_of_the_bots_own_email_gets_a_reason(env: BotEnv) -> None:
    """Forwarded as an attachment, the bot's own form link is not silently filed as a
    robot's: the staff member is told why nothing was done."""
    env.append(samples.free_text(sender=f"Léa Martin <{LEA}>"))
    env.run()
    [link] = env.smtp.handler.to(LEA)
    inner = email.message_from_bytes(link.data, policy=email.policy.SMTP)
    assert isinstance(inner, EmailMessage)
    env.append(_attached_forward(inner))
    env.run()
    [refusal] = env.smtp.handler.to(STAFF)
    assert "boîte des réclamations elle-même" in refusal.text()
    assert len(env.contacts()) == 1


def test_security_a_stranger_naming_staff_in_reply_to_meets_the_daily_limit(
        env: BotEnv) -> None:
    """Staff confirmations are not counted, but answers a stranger sends to a staff
    address through Reply-To still are: the limit stays the last defence."""
    limit = env.app.rulebook.auto_replies_per_address_per_day
    for index in range(limit + 3):
        env.append(samples.free_text(sender=f"Inconnu {index} <x{index}@example.net>",
                                     reply_to=STAFF))
    env.run()
    assert len(env.smtp.handler.to(STAFF)) == limit


def test_security_a_hidden_block_in_an_html_forward_is_not_read(env: BotEnv) -> None:
    html = (f"<p>Pour traitement.</p><template><p>De : Victime &lt;{VICTIM}&gt;<br>"
            f"Envoyé : jeudi 3 décembre 2026 10:12<br>Objet : x</p></template>"
            f"<div hidden><p>De : Victime &lt;{VICTIM}&gt;<br>Envoyé : jeudi 3 décembre 2026"
            f" 10:12<br>Objet : x</p></div>"
            f"<hr><p><b>De :</b> Mallory &lt;{ATTACKER}&gt;<br><b>Envoyé :</b> jeudi 3 "
            f"décembre 2026 10:12<br><b>À :</b> {STAFF}<br><b>Objet :</b> Réclamation</p>"
            f"<p>Bonjour, voici ma réclamation sur la session.</p>")
    env.append(samples._message(sender=f"Sophie Accueil <{STAFF}>", to=BOT,
                                subject="TR: RÉCLAMATION", html=html))
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == ATTACKER
    _nobody_but(env, ATTACKER, STAFF)


def test_security_a_forged_pass_below_our_servers_results_proves_nothing() -> None:
    """Our server adds its Authentication-Results on top; a header a sender wrote with
    the same id, further down, never overrides what it found (OpenDKIM and OpenDMARC
    adding one header each still count)."""
    from bot.config import SecurityConfig
    from bot.intake.authcheck import authentication_problem

    security = SecurityConfig(require_authentication_results=True, authserv_id="mx.example.fr")

    def check(*results: str) -> str | None:
        head = "".join(f"Authentication-Results: {r}\r\n" for r in results)
        raw = (f"{head}From: {STAFF}\r\nTo: {BOT}\r\nSubject: x\r\n\r\nx\r\n").encode()
        return authentication_problem(parse_message(raw), security)

    forged = "mx.example.fr; dmarc=pass header.from=example.fr"
    assert check("mx.example.fr; dmarc=fail header.from=example.fr", forged) is not None
    assert check("mx.example.fr; dkim=fail header.d=example.fr",
                 "mx.example.fr; dkim=pass header.d=example.fr") is not None
    assert check("mx.example.fr; dkim=pass header.d=example.fr",
                 "mx.example.fr; dmarc=pass header.from=example.fr") is None
    assert check("mx.example.fr; dkim=fail header.d=other.example; "
                 "dkim=pass header.d=example.fr") is None
