"""The director acts by email: commands, responses, mediation rights, and nobody else may."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from bot.reporting.export import write_csv
from bot.store.models import Event
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, BotEnv
from tests.servers import Captured

pytestmark = pytest.mark.integration

CLIENT = "jeanne.martin@example.org"


def register(env: BotEnv, **changes: str) -> Captured:
    """Register one complaint; return the director's notification."""
    fields = dict(samples.COMPLETE_FORM)
    fields.update(changes)
    env.append(samples.form_submission(fields))
    env.run()
    notifications = [c for c in env.smtp.handler.to(DIRECTOR)
                     if "Nouvelle réclamation" in c.subject]
    return notifications[-1]


def gmail_quote(original: Captured) -> str:
    lines = "\n".join(f"> {line}" for line in original.text().splitlines())
    return f"Le mer. 25 nov. 2026 à 10:15, SophroAttitude <{BOT}> a écrit :\n{lines}"


def outlook_quote(original: Captured) -> str:
    return (f"________________________________\nDe : SophroAttitude <{BOT}>\n"
            f"Envoyé : mercredi 25 novembre 2026 10:15\nÀ : {DIRECTOR}\n"
            f"Objet : {original.subject}\n\n{original.text()}")


def thunderbird_quote(original: Captured) -> str:
    lines = "\n".join(f"> {line}" for line in original.text().splitlines())
    return f"Le 25/11/2026 à 10:15, SophroAttitude a écrit :\n{lines}"


def command(env: BotEnv, notification: Captured, body: str, *, sender: str = DIRECTOR,
            quote=gmail_quote, subject: str | None = None, **kwargs: object) -> Captured | None:  # type: ignore[no-untyped-def]
    """The director replies to ``notification`` with ``body``; return her answer from the bot."""
    before = len(env.smtp.handler.received)
    raw = samples.reply(notification.data, body, sender=sender, quote=quote(notification),
                        **kwargs)
    if subject is not None:
        raw = re.sub(rb"(?m)^Subject: .*(\r\n[ \t].*)*", b"Subject: " + subject.encode(), raw,
                     count=1)
    env.append(raw)
    env.run()
    new = env.smtp.handler.received[before:]
    answers = [c for c in new if sender in c.recipients]
    return answers[-1] if answers else None


def test_notification_carries_token_and_cheat_sheet(env: BotEnv) -> None:
    notification = register(env)
    [complaint] = env.complaints()
    assert re.search(rf"\[{complaint.number}/[A-Z2-7]{{16}}\]", notification.subject)
    assert "#reponse positive|negative|partielle" in notification.text()
    assert "#manquement" in notification.html()


@pytest.mark.parametrize("quote", [gmail_quote, outlook_quote, thunderbird_quote])
def test_full_life_cycle(env: BotEnv, quote) -> None:  # type: ignore[no-untyped-def]
    env.now = dt.datetime(2026, 9, 16, 9, 0)  # in the past: IMAP keeps it
    notification = register(env)
    env.now = dt.datetime(2026, 9, 18, 15, 0)
    answer = command(env, notification, (
        "Bonjour,\n\n"
        "#manquement L'attestation n'a pas été envoyée après la session.\n"
        "#Manquement Relances du 2 et du 9 octobre restées sans réponse\n"
        "#action 2026-09-17 Attestation générée et envoyée par courrier\n"
        "#action Procédure d'envoi automatique des attestations mise en place\n"
        "#Réponse négative\n"
        "Madame,\nVotre attestation vous a été envoyée le 26 novembre.\n"
        "Nous ne pouvons pas accorder le dédommagement demandé.\n"
        "#CLÔTURER Attestation transmise, procédure corrigée\n"
        "\nClaire\n"
    ), quote=quote)
    assert answer is not None and "Commandes enregistrées" in answer.subject
    [complaint] = env.complaints()
    assert complaint.status == "closed"
    assert [f.text for f in complaint.failures] == [
        "L'attestation n'a pas été envoyée après la session.",
        "Relances du 2 et du 9 octobre restées sans réponse",
    ]
    assert [(a.day, a.text) for a in complaint.actions] == [
        (dt.date(2026, 9, 17), "Attestation générée et envoyée par courrier"),
        (dt.date(2026, 9, 18), "Procédure d'envoi automatique des attestations mise en place"),
    ]
    assert complaint.response_outcome == "négative"
    assert complaint.response_number == "REP-2026-0001"
    assert complaint.response_date == dt.date(2026, 9, 18)
    assert complaint.response_text.startswith("Madame,\nVotre attestation")
    # Everything under the last command is its text, the sign-off too (a "-- " line ends it).
    assert complaint.resolution == "Attestation transmise, procédure corrigée\nClaire"
    assert complaint.closed_at == dt.datetime(2026, 9, 18, 15, 0)
    assert complaint.mediation_sent_at is not None

    to_client = env.smtp.handler.to(CLIENT)
    kinds = [c.subject for c in to_client]
    assert any("Accusé de réception" in s for s in kinds)
    [response] = [c for c in to_client if "Réponse à votre réclamation" in c.subject]
    assert "REP-2026-0001" in response.subject
    assert "Nous ne pouvons pas accorder le dédommagement demandé." in response.text()
    assert "#manquement" not in response.text()  # internal matters never reach the client
    [mediation] = [c for c in to_client if "médiateur" in c.subject]
    text = mediation.text()
    for required in ("AME CONSO", "www.mediationconso-ame.com", "11 Place Dauphine – 75001 PARIS",
                     "gratuitement", "facultative", "tribunaux", "un an",
                     "au plus tard le jeudi 16 septembre 2027", complaint.number,
                     "mercredi 16 septembre 2026", "deux mois", "pièces"):
        assert required in text, required
    for line in ("Manquement enregistré", "Action du 17/09/2026", "REP-2026-0001",
                 "médiation", "clôturée"):
        assert line in answer.text(), line

    out = io.StringIO()
    with env.app.sessions() as session:
        write_csv(session, out, env.app.rulebook)
    header, row = list(csv.reader(io.StringIO(out.getvalue()), delimiter=";"))
    record = dict(zip(header, row, strict=True))
    empty = [k for k, v in record.items() if not v]
    # Every element of the procedure is filled; only what does not apply stays empty: the
    # sample form has no company, a closed complaint has no next deadline, it was not
    # extended, and the satisfaction question comes a few days after the answer.
    assert empty == ["Entreprise / organisme", "Prochaine échéance", "Prolongation (motif)",
                     "Satisfaction"], empty
    assert "2026-09-17 : Attestation générée" in record["Actions menées (avec dates)"]
    assert record["Réponse apportée (positive ou négative)"].startswith("négative")

    events = env.query(Event, Event.complaint_id == complaint.id)
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["registered", "acknowledged"]
    assert kinds[2:] == ["failure", "failure", "action", "action", "response",
                         "mediation_information", "closed"]
    assert len({e.origin for e in events[2:]}) == 1 and events[2].origin.startswith("<")


def test_professional_gets_response_without_mediation(env: BotEnv) -> None:
    notification = register(env, **{"Vous agissez en tant que": "Professionnel"})
    answer = command(env, notification, "#reponse partielle\nNous remboursons la moitié.\n")
    assert answer is not None and "n'agit pas en consommateur" in answer.text()
    subjects = [c.subject for c in env.smtp.handler.to(CLIENT)]
    assert not any("médiateur" in s for s in subjects)
    assert env.complaints()[0].mediation_sent_at is None

    # The director corrects the consumer status, then answers again.
    command(env, notification, "#consommateur oui\n#reponse negative\nFinalement non.\n")
    [complaint] = env.complaints()
    assert complaint.is_consumer is True and complaint.response_number.endswith("0002")
    assert sum("médiateur" in c.subject for c in env.smtp.handler.to(CLIENT)) == 1


def test_unknown_acting_as_is_treated_as_consumer(env: BotEnv) -> None:
    notification = register(env, **{"Vous agissez en tant que": ""})
    command(env, notification, "#reponse negative\nNon.\n")
    assert sum("médiateur" in c.subject for c in env.smtp.handler.to(CLIENT)) == 1


def test_positive_response_has_no_mediation(env: BotEnv) -> None:
    notification = register(env)
    command(env, notification, "#reponse positive\nVous avez raison.\n")
    subjects = [c.subject for c in env.smtp.handler.to(CLIENT)]
    assert any("Réponse à votre réclamation" in s for s in subjects)
    assert not any("médiateur" in s for s in subjects)


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("#manquement ok\n#actoin 2026-11-26 typo\n", 2, "commande inconnue « #actoin »"),
        ("#manquement ok\n#action 2026-13-45 mauvaise date\n", 2, "date invalide « 2026-13-45 »"),
        ("#reponse\nTexte sans issue\n", 1, "issue de la réponse manquante"),
        ("#reponse peut-être\nTexte\n", 1, "issue de la réponse manquante ou inconnue"),
        ("#reponse positive\n", 1, "texte de la réponse manquant"),
        ("#manquement\n", 1, "texte du manquement manquant"),
        ("#requalifier\n", 1, "motif de la requalification manquant"),
        ("#rouvrir\n", 1, "seule une réclamation clôturée peut être rouverte"),
        ("#consommateur peut-être\n", 1, "#consommateur oui ou #consommateur non"),
        ("Merci pour l'info.\n", None, "aucune commande trouvée"),
    ],
)
def test_errors_name_the_line_and_change_nothing(
        env: BotEnv, body: str, line: int | None, problem: str) -> None:
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, notification, body)
    assert answer is not None and "Commande refusée" in answer.subject
    assert problem in answer.text()
    if line is not None:
        assert f"Ligne {line} :" in answer.text()
    [complaint] = env.complaints()
    assert complaint.failures == [] and complaint.actions == []
    assert complaint.status == "open" and complaint.response_number == ""
    assert len(env.smtp.handler.to(CLIENT)) == before


def test_command_on_closed_complaint_and_reopen(env: BotEnv) -> None:
    notification = register(env)
    command(env, notification, "#cloturer Réglé par téléphone\n")
    answer = command(env, notification, "#action 2026-11-26 encore\n")
    assert answer is not None and "est clôturée" in answer.text()
    assert env.complaints()[0].actions == []
    answer = command(env, notification, "#rouvrir Le client rappelle\n#action 2026-11-26 Rappel\n")
    assert answer is not None and "Commandes enregistrées" in answer.subject
    [complaint] = env.complaints()
    assert complaint.status == "open" and complaint.closed_at is None
    assert len(complaint.actions) == 1


def test_requalify(env: BotEnv) -> None:
    notification = register(env, **{"Objet de la réclamation": "Dates des prochaines sessions ?"})
    command(env, notification, "#requalifier Demande d'information sur le calendrier\n")
    [complaint] = env.complaints()
    assert complaint.status == "requalified"
    assert complaint.requalified_reason == "Demande d'information sur le calendrier"
    [answer] = [c for c in env.smtp.handler.to(CLIENT) if "Votre demande" in c.subject]
    assert "n'est" not in answer.subject and "plutôt que d'une réclamation" in answer.text()
    out = io.StringIO()
    with env.app.sessions() as session:
        assert write_csv(session, out, env.app.rulebook) == 0


def test_note_stays_internal_and_attachments_join_the_dossier(env: BotEnv) -> None:
    notification = register(env)
    answer = command(env, notification, "#note Appeler la stagiaire jeudi\n",
                     attachments=[("../courrier attestation.pdf", "application/pdf",
                                   samples.pdf_bytes())])
    assert answer is not None and "Note interne enregistrée" in answer.text()
    assert "courrier attestation.pdf" in answer.text()
    assert len(env.smtp.handler.to(CLIENT)) == 1  # only the acknowledgement
    [complaint] = env.complaints()
    files = [p.name for p in (env.config.dossiers / complaint.number / "pieces-jointes").iterdir()]
    assert any(name.endswith("courrier attestation.pdf") for name in files)
    notes = [e for e in env.query(Event, Event.complaint_id == complaint.id) if e.kind == "note"]
    assert notes[0].detail == {"text": "Appeler la stagiaire jeudi"}


def test_help_and_list_without_token(env: BotEnv) -> None:
    register(env)
    env.append(samples._message(sender=DIRECTOR, to=BOT, subject="commandes", text="#liste\n"))
    env.append(samples._message(sender=DIRECTOR, to=BOT, subject="aide", text="#aide\n"))
    env.run()
    answers = env.smtp.handler.to(DIRECTOR)[-2:]
    [complaint] = env.complaints()
    assert f"- {complaint.number} (0 j) Jeanne Martin" in answers[0].text()
    assert "jours depuis la réception" in answers[0].text()  # what «j» counts
    assert "#reponse positive|negative|partielle" in answers[1].text()
    # Nothing was done: the answers do not say «Commandes enregistrées».
    assert [a.subject for a in answers] == ["Réponse à votre demande"] * 2
    html = answers[1].message.get_body(("html",)).get_content()
    assert "mailto:" in html and "<table" in html  # the help is the commands' table
    listed = answers[0].message.get_body(("html",)).get_content()
    assert f"<li style=\"overflow-wrap: anywhere;\">{complaint.number}" in listed


# --- Nobody but the director -----------------------------------------------------------------


def assert_nothing_changed(env: BotEnv, before_client: int) -> None:
    for complaint in env.complaints():
        assert complaint.failures == [] and complaint.actions == []
        assert complaint.status == "open" and complaint.response_number == ""
    assert len(env.smtp.handler.to(CLIENT)) == before_client


def alerts(env: BotEnv) -> list[Captured]:
    return [c for c in env.smtp.handler.to(DIRECTOR) if c.subject.startswith("Alerte")]


def test_wrong_sender_with_valid_token(env: BotEnv) -> None:
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, notification, "#reponse positive\nOK\n#cloturer\n",
                     sender="Mallory <mallory@example.com>")
    assert answer is None  # the sender gets nothing
    assert_nothing_changed(env, before)
    [alert] = alerts(env)
    assert "mallory@example.com" in alert.text()
    assert "pas une adresse de la direction" in alert.text()
    assert env.smtp.handler.to("mallory@example.com") == []


def test_director_without_token(env: BotEnv) -> None:
    register(env)
    before = len(env.smtp.handler.to(CLIENT))
    env.append(samples._message(sender=DIRECTOR, to=BOT, subject="Re: REC-2026-0001",
                                text="#reponse positive\nOK\n"))
    env.run()
    assert_nothing_changed(env, before)
    [alert] = alerts(env)
    assert "sans la clé d'une réclamation" in alert.text()


def test_token_of_another_complaint(env: BotEnv) -> None:
    first = register(env)
    register(env, **{"Adresse e-mail": "autre@example.org"})
    one, two = env.complaints()
    subject = first.subject.replace(one.number, two.number)  # first's token, second's number
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, first, "#reponse positive\nOK\n", subject=f"Re: {subject}")
    assert answer is not None and answer.subject.startswith("Alerte")  # no confirmation
    assert_nothing_changed(env, before)
    assert len(env.smtp.handler.to("autre@example.org")) == 1  # its acknowledgement only
    [alert] = alerts(env)
    assert f"n'est pas valable pour {two.number}" in alert.text()


def test_forged_token(env: BotEnv) -> None:
    notification = register(env)
    [complaint] = env.complaints()
    forged = re.sub(r"/[A-Z2-7]{16}\]", "/AAAAAAAAAAAAAAAA]", notification.subject)
    before = len(env.smtp.handler.to(CLIENT))
    command(env, notification, "#cloturer\n", subject=f"Re: {forged}")
    assert_nothing_changed(env, before)
    [alert] = alerts(env)
    assert f"n'est pas valable pour {complaint.number}" in alert.text()


def test_authentication_results_required(env: BotEnv) -> None:
    with env.config_path.open("a") as out:
        out.write('\n[security]\nrequire_authentication_results = true\n'
                  'authserv_id = "mx.example.fr"\n')
    env.restart()
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    # Forged From with a valid token but no authentication by our server: refused.
    command(env, notification, "#manquement test\n")
    assert_nothing_changed(env, before)
    assert "pas d'en-tête Authentication-Results de mx.example.fr" in alerts(env)[0].text()
    # A header from another server proves nothing.
    command(env, notification, "#manquement test\n",
            headers={"Authentication-Results": "evil.example; dmarc=pass header.from=example.fr"})
    assert env.complaints()[0].failures == []
    # Our server says DMARC passed: accepted.
    answer = command(env, notification, "#manquement test\n", headers={
        "Authentication-Results": "mx.example.fr; dkim=pass header.d=example.fr; "
                                  "dmarc=pass (p=reject) header.from=example.fr"})
    assert answer is not None and "Commandes enregistrées" in answer.subject
    assert [f.text for f in env.complaints()[0].failures] == ["test"]


def test_logs_carry_no_personal_data_nor_secrets(env: BotEnv,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO)
    env.smtp.handler.refuse["paul@example.org"] = "550 5.1.1 <paul@example.org> unknown"
    notification = register(env)
    env.append(samples.form_submission(dict(samples.COMPLETE_FORM, **{
        "Adresse e-mail": "paul@example.org", "Nom et prénom": "Paul Bernard"})))
    env.append(samples.free_text(sender="Lucie Petit <lucie@example.org>"))
    command(env, notification, "#manquement Oubli\n#reponse negative\nNon.\n")
    command(env, notification, "#cloturer\n", sender="mallory@example.com")
    # Everything the bot's process logs (the test SMTP server's own "mail.log" aside).
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if r.levelno >= logging.INFO and not r.name.startswith("mail.log"))
    assert "REC-" in logged  # the ticket number is there...
    for personal in ("jeanne", "Jeanne", "Martin", "paul@", "Paul", "lucie", "Lucie",
                     "mallory", "attestation", "Oubli", "secret", "Mot de passe"):
        assert personal not in logged, personal  # ...and nothing else about anyone


def no_quote(original: Captured) -> str:
    return ""


def test_refused_command_email_sends_no_response(env: BotEnv) -> None:
    """#reponse, #cloturer, then #manquement, refused because the complaint is closed by
    then: nothing was recorded, and nothing reaches the complainant: no response email,
    no copy of one in the dossier, and REP-…-0001 goes to the next response."""
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, notification, "#reponse positive\nVotre attestation est partie.\n"
                     "#cloturer\n#manquement Retard d'envoi\n", quote=no_quote)
    assert answer is not None and "Commande refusée" in answer.subject
    assert len(env.smtp.handler.to(CLIENT)) == before
    [complaint] = env.complaints()
    assert complaint.status == "open" and complaint.response_number == ""
    sent = env.app.dossiers.folder(complaint.number) / "envois"  # type: ignore[attr-defined]
    assert not [p for p in sent.glob("*") if "response" in p.name]
    assert env.query(Event, Event.kind.in_(["response", "closed", "failure"])) == []
    command(env, notification, "#reponse positive\nVotre attestation est partie.\n",
            quote=no_quote)
    [answered] = env.complaints()
    assert answered.response_number.endswith("-0001")
    [response] = [c for c in env.smtp.handler.to(CLIENT) if "Réponse" in c.subject]
    assert answered.response_number in response.subject


def test_refusal_on_the_last_of_five_commands(env: BotEnv) -> None:
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, notification, "#manquement Oubli\n#action 2026-12-01 Renvoi\n"
                     "#note appelée\n#reponse negative\nNous ne pouvons pas.\n"
                     "#prolonger deux jours\n")
    assert answer is not None and "Commande refusée" in answer.subject
    assert "Ligne 6" in answer.text()
    assert len(env.smtp.handler.to(CLIENT)) == before
    [complaint] = env.complaints()
    assert complaint.failures == [] and complaint.actions == []
    assert complaint.mediation_sent_at is None and complaint.response_number == ""


def test_guard_stops_a_reply_whose_quote_no_rule_recognises(env: BotEnv) -> None:
    """The notification pasted under her response with no introduction any client writes:
    refused whole, the quoted-looking lines named; the complainant receives nothing."""
    notification = register(env)
    before = len(env.smtp.handler.to(CLIENT))
    answer = command(env, notification, "#reponse positive\nC'est réglé.\n",
                     quote=lambda original: original.text())
    assert answer is not None and "Commande refusée" in answer.subject
    assert "semblent venir de la notification citée" in answer.text()
    assert len(env.smtp.handler.to(CLIENT)) == before
    assert env.complaints()[0].response_text == ""


def test_check_proposes_the_servers_authserv_id_or_says_what_is_left_open(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    """Commands authenticated wherever the server allows it: ``check`` reads the
    Authentication-Results of the mailbox's recent messages and proposes the id of the
    server that adds them; where none carries one, it says in one line what is open."""
    from bot.cli import main

    env.append(samples.free_text())
    assert main(["--config", str(env.config_path), "check"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.split()[1] == "commands"]
    assert "aucun des 50 derniers messages" in line and "qui connaît une clé" in line
    # A header that names no server (Microsoft 365's begins with its results) proposes
    # nothing; one that does is proposed.
    env.append(samples.free_text(headers={
        "Authentication-Results": "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.org"}))
    assert main(["--config", str(env.config_path), "check"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.split()[1] == "commands"]
    assert "ne nomment pas le serveur" in line and "qui connaît une clé" in line
    env.append(samples.free_text(headers={
        "Authentication-Results": "mx.ovh.example; dkim=pass header.d=example.org; "
                                  "dmarc=pass header.from=example.org"}))
    assert main(["--config", str(env.config_path), "check"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.split()[1] == "commands"]
    assert 'require_authentication_results = true et authserv_id = "mx.ovh.example"' in line
    # What init reads, on a connection of its own, before the bot's folders exist.
    from bot.ops.check import mailbox_authentication

    assert env.app.config.imap is not None
    servers = mailbox_authentication(env.app.config.imap)
    assert (servers.proposed(), servers.anonymous) == ("mx.ovh.example", 1)


def test_security_a_renewed_key_leaves_the_old_one_opening_nothing(env: BotEnv) -> None:
    """#nouvellecle: a key that leaked (a forwarded notification, a quoted reply) stops
    working; the confirmation carries the new one, which works."""
    notification = register(env)
    [complaint] = env.complaints()
    old_tag = env.app.tokens.tag(complaint.number)
    answer = command(env, notification, "#nouvellecle\n")
    assert answer is not None and "Commandes enregistrées" in answer.subject
    [renewed] = env.complaints()
    new_tag = env.app.tokens.tag(renewed.number, renewed.key_generation)
    assert renewed.key_generation == 1 and new_tag != old_tag
    assert new_tag in answer.subject and new_tag in answer.text()
    before = len(alerts(env))
    command(env, notification, "#note avec l'ancienne clé\n")  # its subject has the old tag
    assert len(alerts(env)) == before + 1
    assert env.query(Event, Event.kind == "note") == []
    confirmed = command(env, answer, "#note avec la nouvelle clé\n")
    assert confirmed is not None and "Commandes enregistrées" in confirmed.subject
    assert [e.detail["text"] for e in env.query(Event, Event.kind == "note")] == [
        "avec la nouvelle clé"]
