"""Intake end to end, through the real Dovecot and SMTP servers of the suite."""

from __future__ import annotations

import csv
import datetime as dt
import email.header
import io
import re
from pathlib import Path

import pytest

from bot.pipeline import finish_batch
from bot.reporting.export import REGISTER_COLUMNS, write_csv
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, FORM_SENDER, BotEnv

pytestmark = pytest.mark.integration

PROCESSED = "Réclamations/Traitées"
IGNORED = "Réclamations/Ignorées"


def form(**changes: str) -> dict[str, str]:
    fields = dict(samples.COMPLETE_FORM)
    fields.update(changes)
    return fields


def encoded_subject(text: str, charset: str) -> str:
    return email.header.Header(text, charset).encode()


# --- 1. Free text with the tag: the form link, and an initial contact ------------------------


@pytest.mark.parametrize(
    "subject",
    [
        encoded_subject("RÉCLAMATION : attestation manquante", "utf-8"),
        encoded_subject("Réclamation formation", "iso-8859-1"),
        "Re: TR: Fwd: reclamation",
        "[Réclamation] Accueil",
        "tr: RECLAMATION urgente",
    ],
)
@pytest.mark.mailbox
def test_free_text_gets_form_link_with_reference(env: BotEnv, subject: str) -> None:
    env.append(samples.free_text(subject=subject))
    summary = env.run()

    assert summary.actions == {"new_contact": 1}
    [contact] = env.contacts()
    assert contact.sender_email == "jeanne.martin@example.org"
    assert re.fullmatch(r"CT-[A-Z2-9]{8}", contact.reference)
    [sent] = env.smtp.handler.received
    assert sent.recipients == ["jeanne.martin@example.org"]
    assert f"https://www.example.fr/reclamation?ref={contact.reference}" in sent.text()
    assert f"?ref={contact.reference}" in sent.html()
    assert contact.reference in sent.subject
    assert "version 2026-01" in sent.text()
    assert env.folder("INBOX") == []
    assert len(env.folder(PROCESSED)) == 1


@pytest.mark.mailbox
def test_form_submission_links_to_initial_contact(env: BotEnv) -> None:
    env.now = dt.datetime(2026, 11, 23, 9, 0)
    env.append(samples.free_text())
    env.run()
    [contact] = env.contacts()

    env.now = dt.datetime(2026, 11, 25, 14, 0)
    env.append(samples.form_submission(form(**{"Référence": contact.reference})))
    env.run()

    [complaint] = env.complaints()
    assert complaint.initial_reference == contact.reference
    assert complaint.initial_contact_at == contact.received_at
    assert contact.reference in complaint.initial_mode
    assert complaint.initial_mode.startswith("Courriel")
    [contact] = env.contacts()
    assert contact.status == "converted" and contact.complaint_id == complaint.id
    # The initial email joined the complaint's dossier.
    folder = env.config.dossiers / complaint.number
    assert len(list((folder / "messages").iterdir())) == 2
    assert not (env.config.dossiers / contact.reference).exists()


def test_one_batch_sees_what_its_earlier_messages_did(env: BotEnv) -> None:
    # A batch is flushed once, at its end: a message must still find the contact an earlier
    # message of the same batch created, and a copy must still follow its original.
    env.append(samples.form_submission(form(**{"Adresse e-mail": "luc@example.org"})))
    env.run()  # the year's counter exists: nothing in the batch below has to flush early
    submission = samples.form_submission()
    env.append(samples.free_text())  # from jeanne.martin@example.org, as the form says
    env.append(submission)
    env.append(submission)
    env.append(samples.form_submission(form(**{"Adresse e-mail": "paul@example.org"})))
    summary = env.run()
    assert summary.fetched == 4 and env.config.bot.batch_size >= 4

    [contact] = env.contacts()
    _, first, second = env.complaints()
    assert (first.client_email, second.client_email) == ("jeanne.martin@example.org",
                                                         "paul@example.org")
    assert first.initial_reference == contact.reference
    assert contact.status == "converted" and contact.complaint_id == first.id
    assert second.initial_reference == second.number  # no contact of Paul's to follow
    rows = env.inbound()[1:]
    assert [r.action for r in rows] == ["new_contact", "submission", "duplicate", "submission"]
    assert rows[2].duplicate_of == rows[1].id
    assert len(env.smtp.handler.to("jeanne.martin@example.org")) == 2  # form link, ack

    # A contact of the register converted by a message of the batch still says "open" in
    # the database until the batch's flush: the next submission must not follow it too.
    env.append(samples.free_text(sender="Paul <paul@example.org>"))
    env.run()
    [paul] = [c for c in env.contacts() if c.sender_email == "paul@example.org"]
    env.append(samples.form_submission(form(**{"Adresse e-mail": "paul@example.org",
                                                "Objet de la réclamation": "Facture"})))
    env.append(samples.form_submission(form(**{"Adresse e-mail": "paul@example.org",
                                                "Objet de la réclamation": "Horaires"})))
    env.run()
    third, fourth = env.complaints()[3:]
    assert third.initial_reference == paul.reference
    assert fourth.initial_reference == fourth.number


# --- 2 and 4. The official form, plain text and HTML: registered and acknowledged ------------


def test_plain_and_html_forms_are_registered_in_sequence(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.append(samples.form_submission(
        form(**{"Nom et prénom": "Sophie Leroy", "Adresse e-mail": "sophie.leroy@example.net",
                "Qualité": "FINANCEUR", "Vous agissez en tant que": "Professionnel"}),
        as_html=True,
        attachments=[("../../etc/cron.d/x", "application/pdf", samples.pdf_bytes()),
                     ("émargement.pdf", "application/pdf", samples.pdf_bytes(4000))],
    ))
    summary = env.run()

    assert summary.actions == {"submission": 2}
    first, second = env.complaints()
    year = dt.date.today().year
    assert (first.number, second.number) == (f"REC-{year}-0001", f"REC-{year}-0002")
    assert first.client_name == "Jeanne Martin"
    assert first.category == "stagiaire" and first.is_consumer is True
    assert first.description.splitlines()[1].startswith("Malgré deux relances")
    assert first.training_actions.startswith("Sophrologie")
    assert first.facts_date == "2026-09-30"
    assert first.form_version == "2026-01"
    assert first.initial_mode.startswith("Formulaire du site")
    assert second.client_name == "Sophie Leroy"
    assert second.category == "financeur" and second.is_consumer is False

    acks = env.smtp.handler.to("jeanne.martin@example.org")
    assert len(acks) == 1
    ack = acks[0]
    assert first.number in ack.subject
    assert first.answer_due is not None
    assert "10 jours ouvrés" in ack.text()
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert "envoyé automatiquement" in ack.text()
    notifications = env.smtp.handler.to(DIRECTOR)
    assert len(notifications) == 2
    assert first.number in notifications[0].subject
    assert "Attestation de formation non reçue" in notifications[0].text()
    assert "Jeanne Martin" in notifications[0].text()

    # The dossier: original message, attachments with safe names, copies of the emails sent.
    folder = env.config.dossiers / second.number
    assert len(list((folder / "messages").glob("*.eml"))) == 1
    names = sorted(p.name for p in (folder / "pieces-jointes").iterdir())
    assert len(names) == 2
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert any(n.endswith("-01-x") for n in names) and any("émargement.pdf" in n for n in names)
    assert len(list((folder / "envois").glob("*.eml"))) == 2
    for path in folder.rglob("*"):
        assert path.resolve().is_relative_to(env.config.dossiers.resolve())
    assert second.documents_location == f"dossiers/{second.number}/"


def test_html_only_free_text_message(env: BotEnv) -> None:
    raw = samples._message(
        sender="Marie Curie <marie@example.org>", to=BOT, subject="Réclamation",
        html="<html><body><p>Bonjour,</p><p>Le <b>support</b> n'était pas disponible.</p>"
             "</body></html>")
    env.append(raw)
    env.run()
    [contact] = env.contacts()
    assert contact.sender_email == "marie@example.org"
    assert len(env.smtp.handler.to("marie@example.org")) == 1


def test_tolerant_labels(env: BotEnv) -> None:
    text = samples.form_text(form())
    text = text.replace("Objet de la réclamation :", "OBJET DE LA RECLAMATION:")
    text = text.replace("Nom et prénom :", "  nom  et  prenom *  :")
    env.append(samples._message(sender=FORM_SENDER, to=BOT, subject="Formulaire", text=text))
    env.run()
    [complaint] = env.complaints()
    assert complaint.object == "Attestation de formation non reçue"
    assert complaint.client_name == "Jeanne Martin"


# --- 3. Incomplete or non-conforming: information request, then completion ------------------


def test_incomplete_form_requests_information_then_completes(env: BotEnv) -> None:
    incomplete = form(**{"Description": "", "Consentement RGPD": "Non",
                         "Adresse e-mail": "jeanne.martin@example.org"})
    env.append(samples.form_submission(incomplete))
    env.run()

    assert env.complaints() == []
    [ticket] = env.tickets()
    assert ticket.status == "incomplete"
    [request] = env.smtp.handler.to("jeanne.martin@example.org")
    assert ticket.reference in request.subject
    text = request.text()
    assert "Description : information manquante" in text
    assert "Consentement RGPD : votre consentement est nécessaire" in text

    answer = samples.reply(
        request.data,
        "Bonjour,\n\nDescription : Je n'ai pas reçu mon attestation.\nConsentement RGPD : Oui\n",
        sender="Jeanne Martin <jeanne.martin@example.org>",
        quote="Le 25 nov. 2026 à 10:00, SophroAttitude <reclamations@example.fr> a écrit :\n"
              "> Description : information manquante",
    )
    env.append(answer)
    summary = env.run()

    assert summary.actions == {"ticket_reply": 1}
    [complaint] = env.complaints()
    assert complaint.description == "Je n'ai pas reçu mon attestation."
    [ticket] = env.tickets()
    assert ticket.status == "completed" and ticket.complaint_id == complaint.id
    acks = [c for c in env.smtp.handler.to("jeanne.martin@example.org")
            if complaint.number in c.subject]
    assert len(acks) == 1
    folder = env.config.dossiers / complaint.number
    assert len(list((folder / "messages").glob("*.eml"))) == 2
    assert not (env.config.dossiers / ticket.reference).exists()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Adresse e-mail": "pas-une-adresse"}, "Adresse e-mail : l'adresse « pas-une-adresse »"),
        ({"Version du formulaire": "2019-03"}, "la version « 2019-03 » est inconnue"),
        ({"Qualité": "touriste"}, "« touriste » n'est pas une valeur possible"),
        ({"Objet de la réclamation": ""}, "Objet de la réclamation : information manquante"),
    ],
)
def test_non_conforming_submissions_are_not_registered(
        env: BotEnv, changes: dict[str, str], expected: str) -> None:
    env.append(samples.form_submission(form(**changes)))
    env.run()
    assert env.complaints() == []
    [ticket] = env.tickets()
    if "Adresse e-mail" in changes:
        # No valid address in the form: the request goes to the Reply-To the plugin set?
        # The plugin's Reply-To is the same invalid value, so only the director can act.
        [alert] = env.smtp.handler.to(DIRECTOR)
        assert expected in alert.text()
        assert ticket.complainant_email == ""
    else:
        [request] = env.smtp.handler.to("jeanne.martin@example.org")
        assert expected in request.text()


def test_outdated_form_version_is_refused(env: BotEnv, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    source = env.config.rules_dir
    rules.mkdir()
    for name in ("procedure.toml", "robots.toml", "categories.toml"):
        (rules / name).write_text((source / name).read_text())
    forms = (source / "forms.toml").read_text()
    forms = forms.replace("valid_from = 2026-01-01\n",
                          "valid_from = 2026-01-01\nvalid_until = 2026-06-30\n")
    new_version = forms[forms.index("\n[[versions]]"):].replace('id = "2026-01"', 'id = "2026-07"')
    new_version = new_version.replace("valid_from = 2026-01-01\nvalid_until = 2026-06-30\n",
                                      "valid_from = 2026-07-01\n")
    (rules / "forms.toml").write_text(forms + "\n" + new_version)
    with env.config_path.open("a") as out:
        out.write(f'\n[paths]\nrules = "{rules}"\n')
    env.restart()

    env.append(samples.form_submission())  # says 2026-01, out of date since July
    env.append(samples.form_submission(form(**{"Version du formulaire": "2026-07",
                                                "Adresse e-mail": "paul@example.com"})))
    env.run()
    [complaint] = env.complaints()
    assert complaint.form_version == "2026-07"
    [request] = env.smtp.handler.to("jeanne.martin@example.org")
    assert "n'est plus en vigueur" in request.text() and "2026-07" in request.text()


# --- 5. Untagged mail is left alone, unread -------------------------------------------------


@pytest.mark.mailbox
def test_untagged_message_left_unseen_for_humans(env: BotEnv) -> None:
    env.append(samples.free_text(subject="Demande de devis"))
    env.run()
    env.run()
    assert len(env.folder("INBOX")) == 1
    [flags] = env.flags("INBOX")
    assert b"\\Seen" not in flags
    assert env.smtp.handler.received == []
    [row] = env.inbound()
    assert row.action == "leave" and row.folder == ""
    assert any(m["rule"] == "no_tag" for m in row.rules)


@pytest.mark.mailbox
def test_robot_is_filed_not_answered(env: BotEnv) -> None:
    env.append(samples.free_text(subject="Réponse automatique : RÉCLAMATION",
                                 headers={"Auto-Submitted": "auto-replied"}))
    env.run()
    assert env.smtp.handler.received == []
    assert env.contacts() == []
    assert len(env.folder(IGNORED)) == 1
    [row] = env.inbound()
    assert {m["rule"] for m in row.rules} == {"auto_submitted", "out_of_office"}


# --- 6. What the bot sends -----------------------------------------------------------------


def test_sent_emails_are_threaded_templated_and_marked(env: BotEnv) -> None:
    original = samples.free_text()
    env.append(original)
    env.run()
    [sent] = env.smtp.handler.received
    message = sent.message
    original_id = re.search(rb"Message-ID: (<[^>]+>)", original).group(1).decode()
    assert message["In-Reply-To"] == original_id
    assert original_id in message["References"]
    assert message["Message-ID"].endswith("@example.fr>")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["From"].addresses[0].addr_spec == BOT
    assert sent.envelope_from == BOT
    assert message.get_content_type() == "multipart/alternative"
    assert "Pour joindre une personne" in sent.text()
    [contact] = env.contacts()
    copies = list((env.config.dossiers / contact.reference / "envois").glob("*.eml"))
    assert len(copies) == 1 and copies[0].read_bytes() == env.outbox()[0].raw


def test_complainant_text_is_escaped_and_never_template_source(env: BotEnv) -> None:
    env.append(samples.form_submission(form(**{
        "Objet de la réclamation": "{{ 7*7 }} <script>alert(1)</script>",
        "Description": "{% for x in range(3) %}boucle{% endfor %}",
    })))
    env.run()
    [notification] = env.smtp.handler.to(DIRECTOR)
    html = notification.html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "{{ 7*7 }}" in notification.text() and "49" not in notification.subject
    assert "{% for x in range(3) %}" in notification.text()
    assert "boucleboucle" not in notification.text()


# --- Exactly once: re-runs, duplicates, a restart in the middle of a batch --------------------


@pytest.mark.mailbox
def test_rerun_sends_nothing_twice(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.append(samples.free_text())
    env.run()
    first = len(env.smtp.handler.received)
    env.restart()
    env.run()
    env.run()
    assert len(env.smtp.handler.received) == first == 3
    assert len(env.complaints()) == 1 and len(env.contacts()) == 1


@pytest.mark.mailbox
def test_same_message_appended_twice_is_registered_once(env: BotEnv) -> None:
    raw = samples.form_submission()
    env.append(raw)
    env.run()
    env.append(raw)
    env.append(raw.replace(b"From:", b"Received: from relay.example.net\r\nFrom:", 1))
    env.run()
    assert len(env.complaints()) == 1
    assert len(env.smtp.handler.to("jeanne.martin@example.org")) == 1
    actions = [r.action for r in env.inbound()]
    assert actions == ["submission", "duplicate", "duplicate"]
    assert len(env.folder(IGNORED)) == 2


@pytest.mark.mailbox
def test_restart_in_the_middle_of_a_batch(env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):  # more than one batch of 5
        env.append(samples.form_submission(form(**{"Adresse e-mail": f"c{i}@example.org"})))
    calls = {"n": 0}

    def crash_after_commit(app, source, outcomes, *rest):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed after the second batch's commit")
        return finish_batch(app, source, outcomes, *rest)

    monkeypatch.setattr("bot.pipeline.finish_batch", crash_after_commit)
    with pytest.raises(KeyboardInterrupt):
        env.run()
    assert len(env.complaints()) == 7  # both batches committed
    monkeypatch.setattr("bot.pipeline.finish_batch", finish_batch)
    env.restart()
    env.run()
    env.run()

    complaints = env.complaints()
    assert len(complaints) == 7
    assert sorted(c.sequence for c in complaints) == list(range(1, 8))
    for i in range(7):
        assert len(env.smtp.handler.to(f"c{i}@example.org")) == 1
    assert len(env.smtp.handler.to(DIRECTOR)) == 7
    assert env.folder("INBOX") == []
    assert len(env.folder(PROCESSED)) == 7
    for complaint in complaints:
        assert len(list((env.config.dossiers / complaint.number / "messages").iterdir())) == 1


@pytest.mark.mailbox
def test_failing_message_is_quarantined_and_batch_goes_on(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.procedure.handlers

    route = bot.procedure.handlers.ROUTES[bot.procedure.handlers.Action.NEW_CONTACT]
    original = route.handler

    def explode(session, app, msg, decision, row):  # type: ignore[no-untyped-def]
        if "boom" in msg.subject:
            raise ValueError("handler failure")
        return original(session, app, msg, decision, row)

    monkeypatch.setitem(bot.procedure.handlers.ROUTES, bot.procedure.handlers.Action.NEW_CONTACT,
                        bot.procedure.handlers.Route(explode, route.folder))
    env.append(samples.free_text(subject="Réclamation boom"))
    env.append(samples.free_text(subject="Réclamation ok", sender="b@example.org"))
    env.run()
    assert [r.action for r in env.inbound()] == ["quarantine", "new_contact"]
    assert env.inbound()[0].error == "ValueError: handler failure"
    assert len(env.folder("Réclamations/Quarantaine")) == 1
    assert len(env.contacts()) == 1 and env.contacts()[0].sender_email == "b@example.org"


def test_row_refused_at_the_end_of_a_batch_quarantines_only_its_message(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.procedure.handlers
    from bot.store.db import append_row
    from bot.store.models import Event

    route = bot.procedure.handlers.ROUTES[bot.procedure.handlers.Action.NEW_CONTACT]
    original = route.handler

    def unwritable(session, app, msg, decision, row):  # type: ignore[no-untyped-def]
        original(session, app, msg, decision, row)
        if "boom" in msg.subject:
            # Held with the batch's other rows, it fails only when they are written.
            append_row(session, Event, at=row.processed_at, kind="x", origin="",
                       detail={"not json": object()}, complaint_id=None, contact_id=None,
                       ticket_id=None)

    monkeypatch.setitem(bot.procedure.handlers.ROUTES, bot.procedure.handlers.Action.NEW_CONTACT,
                        bot.procedure.handlers.Route(unwritable, route.folder))
    env.append(samples.free_text(subject="Réclamation ok", sender="a@example.org"))
    env.append(samples.free_text(subject="Réclamation boom"))
    env.append(samples.free_text(subject="Réclamation ok", sender="b@example.org"))
    env.run()
    assert [r.action for r in env.inbound()] == ["new_contact", "quarantine", "new_contact"]
    assert "TypeError" in env.inbound()[1].error
    assert [c.sender_email for c in env.contacts()] == ["a@example.org", "b@example.org"]
    assert sorted(o.to_address for o in env.outbox()) == ["a@example.org", "b@example.org"]
    assert env.query(Event, Event.kind == "x") == []


# --- Register export -------------------------------------------------------------------------


def test_export_csv(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.run()
    out = io.StringIO()
    with env.app.sessions() as session:
        assert write_csv(session, out, env.app.rulebook) == 1
    rows = list(csv.reader(io.StringIO(out.getvalue()), delimiter=";"))
    assert rows[0][0] == "Numéro du ticket"
    assert rows[0] == [label for label, _ in REGISTER_COLUMNS]
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["Numéro du ticket"] == env.complaints()[0].number
    assert record["Nom du client"] == "Jeanne Martin"
    assert record["Objet de la réclamation"] == "Attestation de formation non reçue"
    assert record["Emplacement des pièces justificatives"].startswith("dossiers/REC-")


# --- reclambot run: continuous, woken by IMAP IDLE ------------------------------------------


@pytest.mark.mailbox
def test_run_forever_answers_new_mail_through_idle(env: BotEnv) -> None:
    import threading
    import time

    from bot.ops.runner import run_forever

    if "IDLE" in env.server.layout.lacks:
        # No IDLE: the bot looks every poll_interval seconds instead (60 by default).
        text = env.config_path.read_text(encoding="utf-8")
        env.config_path.write_text(text.replace("batch_size = 5", "batch_size = 5\n"
                                                "poll_interval = 1"), encoding="utf-8")
        env.restart()
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(env.app, stop), daemon=True)
    worker.start()
    try:
        time.sleep(0.5)  # let it reach IDLE with an empty inbox
        env.append(samples.form_submission())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(env.smtp.handler.received) < 2:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=env.config.bot.idle_timeout + 10)
    assert len(env.smtp.handler.received) == 2
    assert len(env.complaints()) == 1


@pytest.mark.mailbox
def test_mail_that_came_after_the_last_look_is_found_before_idling(env: BotEnv) -> None:
    from bot.intake.sources.imap import ImapSource

    if "IDLE" in env.server.layout.lacks:
        pytest.skip("without IDLE the bot polls")
    source = ImapSource(env.config.imap, env.config.folders)  # type: ignore[arg-type]
    try:
        assert [m for batch in source.fetch(0, 10, 10**7) for m in batch] == []
        env.append(samples.form_submission())
        # Dovecot adds it to the session's view only when a command ends: a SEARCH
        # alone misses it, and IDLE would not announce it again (the server told it
        # with that SEARCH), leaving it to a later look.
        idled: list[object] = []
        client = source.client
        client.idle = lambda: idled.append(1)  # type: ignore[method-assign]
        source.wait(30)
        assert idled == []
    finally:
        source.close()


def test_stranger_cannot_complete_someone_elses_ticket(env: BotEnv) -> None:
    env.append(samples.form_submission(form(**{"Description": ""})))
    env.run()
    [request] = env.smtp.handler.received
    env.append(samples.reply(request.data, "Description : texte d'un tiers\n",
                             sender="Mallory <mallory@example.com>"))
    env.run()
    assert env.complaints() == []
    [_, row] = env.inbound()
    assert row.action == "new_contact"  # a tagged message from someone else: their own contact
    assert any("n'en est pas le correspondant" in m["reason"] for m in row.rules)


def test_complainant_replies_are_forwarded_to_the_director(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.run()
    [complaint] = env.complaints()
    [ack] = env.smtp.handler.to("jeanne.martin@example.org")
    env.append(samples.reply(ack.data, "J'ajoute que la facture est aussi en attente.",
                             sender="Jeanne Martin <jeanne.martin@example.org>",
                             quote="> Accusé de réception"))
    env.run()
    forwarded = [c for c in env.smtp.handler.to(DIRECTOR) if "Nouveau message" in c.subject]
    assert len(forwarded) == 1
    assert f"[{complaint.number}/" in forwarded[0].subject  # carries the command tag
    assert "la facture est aussi en attente" in forwarded[0].text()
    assert "> Accusé de réception" not in forwarded[0].text()
    assert env.inbound()[-1].action == "complaint_reply"
    assert len(list((env.config.dossiers / complaint.number / "messages").iterdir())) == 2


def test_reply_to_form_link_with_text_or_with_the_form(env: BotEnv) -> None:
    env.append(samples.free_text())
    env.run()
    [link] = env.smtp.handler.received
    [contact] = env.contacts()
    env.append(samples.reply(link.data, "Je n'arrive pas à ouvrir le formulaire.",
                             sender="Jeanne Martin <jeanne.martin@example.org>"))
    env.run()
    [forwarded] = env.smtp.handler.to(DIRECTOR)
    assert contact.reference in forwarded.subject
    assert env.complaints() == []
    # Then she answers with the form's fields typed in the email: registered, linked.
    env.append(samples.reply(link.data, samples.form_text(form(**{"Référence": ""})),
                             sender="Jeanne Martin <jeanne.martin@example.org>"))
    env.run()
    [complaint] = env.complaints()
    assert complaint.initial_reference == contact.reference


# --- Parsing in a worker process -------------------------------------------------------------


def test_backlog_parsed_by_a_worker_is_handled_exactly_as_here(
        tmp_path: Path, imap_server, smtp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from bench.corpus import corpus
    from bot.intake.parsing import BACKLOG, BatchParser

    started = []
    start = BatchParser.start

    def start_and_wait(self: BatchParser):  # type: ignore[no-untyped-def]
        # Else the single batch is parsed here while the worker starts.
        started.append(self.workers)
        ready = start(self)
        ready.result()
        return ready

    monkeypatch.setattr(BatchParser, "start", start_and_wait)
    messages = [raw for _, raw in corpus(BACKLOG + 8)]
    seen = []
    for workers in (0, 1):
        directory = tmp_path / f"workers{workers}"
        directory.mkdir()
        bot_env = BotEnv(directory, imap_server, smtp, monkeypatch,
                         f"sqlite:///{directory / 'register.sqlite3'}")
        text = bot_env.config_path.read_text()
        bot_env.config_path.write_text(text.replace(
            "batch_size = 5\n", f"batch_size = {BACKLOG + 8}\nparse_workers = {workers}\n"))
        try:
            for raw in messages:
                bot_env.append(raw)
            assert bot_env.run().fetched == len(messages)
            seen.append((
                [(r.action, [m["rule"] for m in r.rules], r.subject) for r in bot_env.inbound()],
                [(c.number, c.client_email, c.description) for c in bot_env.complaints()],
                # Tags hold a random reference or a key of this register's own secret.
                sorted((o.kind, o.to_address, re.sub(r"\[[^]]*\]", "[…]", o.subject))
                       for o in bot_env.outbox()),
                sorted(p.name for p in (directory / "dossiers").rglob("*.pdf")),
            ))
        finally:
            bot_env.close()
    assert started == [1]  # the second run, and only it, parsed in a worker
    assert seen[0] == seen[1]
    assert len(seen[1][1]) > 10 and len(seen[1][3]) > 2  # registered, attachments filed
