"""Never lose a complaint, never answer a robot, never answer twice: each known failure of
email helpdesks has its own test here, through the real Dovecot and SMTP servers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

import pytest

from bot.store.models import Event, Lock, Outbox
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, FORM_SENDER, BotEnv, MemoryEnv

pytestmark = pytest.mark.integration

PROCESSED = "Réclamations/Traitées"
IGNORED = "Réclamations/Ignorées"
QUARANTINE = "Réclamations/Quarantaine"
CLIENT = "jeanne.martin@example.org"


def all_server_messages(env: BotEnv) -> int:
    return sum(len(env.folder(f)) for f in ("INBOX", PROCESSED, IGNORED, QUARANTINE))


def form(**changes: str) -> dict[str, str]:
    fields = dict(samples.COMPLETE_FORM)
    fields.update(changes)
    return fields


# --- Bounces: never a new ticket per round ---------------------------------------------------


@pytest.mark.mailbox
def test_bounce_of_acknowledgement_is_tied_back_and_reported_once(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.run()
    [complaint] = env.complaints()
    [ack] = env.smtp.handler.to(CLIENT)
    before = len(env.smtp.handler.received)

    env.append(samples.delivery_report(ack.data, CLIENT))
    env.append(samples.delivery_report(ack.data, CLIENT, reporting="mx2.example.org"))
    env.run()

    [complaint] = env.complaints()
    assert complaint.unreachable_at is not None
    assert len(env.complaints()) == 1 and env.contacts() == []
    new = env.smtp.handler.received[before:]
    assert [c.recipients for c in new] == [[DIRECTOR]]  # told once, the complainant never
    assert "n'a pas pu être joint" in new[0].subject and CLIENT in new[0].text()
    [row] = env.query(Outbox, Outbox.kind == "acknowledgement")
    assert row.bounced_at is not None
    assert [r.action for r in env.inbound()[-2:]] == ["bounce", "bounce"]
    assert len(env.folder(IGNORED)) == 2


def test_a_machine_quoting_our_email_is_not_answered_but_its_correspondent_is(
        env: BotEnv) -> None:
    """A helpdesk's receipt quoting the acknowledgement's Message-ID, from an address the
    bot never wrote to, is a robot's; the complainant quoting the same email is a person."""
    env.append(samples.form_submission())
    env.run()
    [ack] = env.smtp.handler.to(CLIENT)
    ours = ack.message["Message-ID"]
    before = len(env.smtp.handler.received)
    env.append(samples.free_text(sender="support@helpdesk.example.net",
                                 subject="[#48213] RÉCLAMATION bien reçue",
                                 body=f"Votre demande est enregistrée.\n\n> Message-ID: {ours}\n"))
    env.run()
    row = env.inbound()[-1]
    assert row.action == "robot" and row.rules[0]["rule"] == "quotes_own_email", row.rules
    assert len(env.smtp.handler.received) == before and env.contacts() == []
    env.append(samples.reply(ack.data, "Merci, j'ajoute une précision.", sender=CLIENT,
                             quote=f"> Message-ID: {ours}"))
    env.run()
    assert env.inbound()[-1].action == "complaint_reply"


def test_delay_report_is_filed_not_answered(env: BotEnv) -> None:
    env.append(samples.free_text())
    env.run()
    [link] = env.smtp.handler.received
    env.append(samples.delivery_report(link.data, CLIENT, permanent=False))
    env.run()
    assert len(env.smtp.handler.received) == 1
    assert env.inbound()[-1].rules[0]["rule"] == "delay_report"


# --- Robots and loops -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "rule"),
    [
        ({"Auto-Submitted": "auto-generated"}, None, "RÉCLAMATION", "auto_submitted"),
        ({"Return-Path": "<>"}, None, "RÉCLAMATION", "return_path"),
        ({}, "MAILER-DAEMON@example.org", "RÉCLAMATION", "robot_sender"),
        ({}, "postmaster@example.org", "Réclamation", "robot_sender"),
        ({"Precedence": "bulk"}, None, "Réclamation", "precedence"),
        ({"List-Id": "<formation.lists.example.org>"}, None, "Réclamation", "robot_headers"),
        ({"X-Auto-Response-Suppress": "OOF"}, None, "Réclamation", "robot_headers"),
        ({}, None, "Réponse automatique : RÉCLAMATION", "out_of_office"),
        ({}, None, "Absence du bureau - Réclamation", "out_of_office"),
        ({}, None, "Out of Office: Réclamation", "out_of_office"),
        ({}, None, "Automatic reply: RECLAMATION", "out_of_office"),
        ({"X-Reclambot": "REC-2026-0001"}, None, "Re: Réclamation", "own_message"),
        ({}, BOT, "Réclamation", "own_message"),
    ],
)
@pytest.mark.mailbox
def test_robots_are_filed_never_answered(env: BotEnv, headers: dict[str, str],
                                         sender: str | None, subject: str, rule: str) -> None:
    env.append(samples.free_text(sender=sender or "Jeanne <jeanne.martin@example.org>",
                                 subject=subject, headers=headers))
    env.run()
    assert env.smtp.handler.received == []
    assert env.contacts() == [] and env.complaints() == []
    [row] = env.inbound()
    assert row.action == "robot" and rule in [m["rule"] for m in row.rules]
    assert len(env.folder(IGNORED)) == 1


def test_delivery_report_content_type_is_a_robot(env: BotEnv) -> None:
    raw = samples.delivery_report(samples.free_text(), CLIENT)  # not about one of ours
    env.append(raw.replace(b"Auto-Submitted: auto-replied\r\n", b"")
               .replace(b"MAILER-DAEMON@", b"daemon@"))
    env.run()
    [row] = env.inbound()
    assert "delivery_report" in [m["rule"] for m in row.rules]
    assert env.smtp.handler.received == []


@pytest.mark.parametrize("batch_size", [5, 50])
def test_per_address_limit_stops_an_unknown_robot(env: BotEnv, batch_size: int) -> None:
    # With 50, the twelve messages are one batch, whose emails are written only at its end.
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace("batch_size = 5\n", f"batch_size = {batch_size}\n"))
    env.restart()
    for i in range(12):
        env.append(samples.free_text(sender="Robot poli <robot@example.com>",
                                     subject=f"Réclamation n°{i}"))
    env.run()
    assert len(env.smtp.handler.to("robot@example.com")) == 10  # rules/robots.toml
    assert len(env.contacts()) == 12  # every message is still recorded and filed
    assert len(env.folder(PROCESSED)) == 12
    limited = env.query(Event, Event.kind == "auto_reply_limited")
    assert len(limited) == 2


def test_a_backlog_s_batch_counts_every_address_s_answers_at_once(env: BotEnv) -> None:
    # A batch of 46 reads the counts of every address in one query: what the register
    # already holds (4 answers today) and what the batch queues both count.
    env.config_path.write_text(env.config_path.read_text().replace("batch_size = 5\n",
                                                                   "batch_size = 50\n"))
    env.restart()
    robot = "Robot poli <robot@example.com>"
    for i in range(4):
        env.append(samples.free_text(sender=robot, subject=f"Réclamation n°{i}"))
        env.run()
    for i in range(4, 40):
        env.append(samples.free_text(sender=robot, subject=f"Réclamation n°{i}"))
    people = [f"personne{i}@example.org" for i in range(6)]
    for address in people:
        env.append(samples.free_text(sender=address))
    env.run()
    assert len(env.smtp.handler.to("robot@example.com")) == 10  # rules/robots.toml
    assert all(len(env.smtp.handler.to(address)) == 1 for address in people)
    assert len(env.query(Event, Event.kind == "auto_reply_limited")) == 30


# --- Exactly once -----------------------------------------------------------------------------


def test_distinct_messages_sharing_a_message_id_are_both_kept(env: BotEnv) -> None:
    first = samples.form_submission(headers={"X-Test": "1"})
    mid = first.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
    second = samples.form_submission(form(**{"Adresse e-mail": "paul@example.org"}))
    second = second.replace(second.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0], mid)
    env.append(first)
    env.append(second)
    env.run()
    assert len(env.complaints()) == 2


def test_uidvalidity_change_registers_and_answers_nothing_twice(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.append(samples.free_text(subject="Demande de devis"))  # stays in the inbox
    env.run()
    sent = len(env.smtp.handler.received)
    env.server.set_uidvalidity(env.user, 4242)
    env.append(samples.form_submission(form(**{"Adresse e-mail": "paul@example.org"})))
    env.restart()
    env.run()
    env.run()
    assert len(env.complaints()) == 2
    assert len(env.smtp.handler.received) == sent + 2  # only the new complaint's two emails
    assert {r.uidvalidity for r in env.inbound()} >= {"4242"}
    assert len(env.folder("INBOX")) == 1


def test_two_processes_starting_at_once_never_crash_on_the_lease(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both look, find no lease row, and insert: the second insert's unique violation is
    the other's lease, reported as such (it used to end in a traceback on PostgreSQL)."""
    from sqlalchemy.orm import Session

    from bot.errors import LockError
    from bot.ops.lock import ProcessLock

    now = env.clock()
    with env.app.transaction() as session:  # the other process got there first
        session.add(Lock(name="reclambot", holder=f"{socket.gethostname()}:{os.getppid()}",
                         acquired_at=now, heartbeat_at=now))
    real_get = Session.get
    blind = [True]

    def late_get(self, entity, ident, **kwargs):  # type: ignore[no-untyped-def]
        if entity is Lock and blind:
            blind.pop()
            return None  # our look came before the other's insert was committed
        return real_get(self, entity, ident, **kwargs)

    monkeypatch.setattr(Session, "get", late_get)
    with pytest.raises(LockError, match="another reclambot"):
        ProcessLock(env.app).acquire()
    assert blind == []  # the race did happen: the first look saw nothing


def test_a_killed_holder_not_yet_collected_by_its_parent_leaves_its_lease(
        env: BotEnv) -> None:
    """SIGKILLed, a holder stays a zombie until its parent waits for it: it is dead all
    the same, and its register is taken over at once."""
    import subprocess
    import sys
    from pathlib import Path

    from bot.ops.lock import ProcessLock

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().rpartition(")")[2].split()[0] \
                != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        now = env.clock()
        with env.app.transaction() as session:
            session.add(Lock(name="reclambot", holder=f"{socket.gethostname()}:{holder.pid}",
                             acquired_at=now, heartbeat_at=now))
        ProcessLock(env.app).acquire()
        with env.app.sessions() as session:
            assert session.get(Lock, "reclambot").holder.endswith(f":{os.getpid()}")
    finally:
        holder.wait()


def test_second_process_exits_with_a_clear_message(env: BotEnv) -> None:
    env.append(samples.form_submission())
    now = env.clock()
    with env.app.transaction() as session:  # a live process of this machine holds the lease
        session.add(Lock(name="reclambot", holder=f"{socket.gethostname()}:{os.getppid()}",
                         acquired_at=now, heartbeat_at=now))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(env.config_path), "run", "--once"],
        capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("reclambot : erreur : another reclambot (")
    assert "stop it first" in result.stderr and "Traceback" not in result.stderr
    assert env.complaints() == [] and env.smtp.handler.received == []

    # The holder dies: its lease is taken over at once, without waiting for it to expire.
    with env.app.transaction() as session:
        session.get(Lock, "reclambot").holder = f"{socket.gethostname()}:999999999"
    env.run()
    assert len(env.complaints()) == 1


@pytest.mark.mailbox
def test_two_processes_on_one_mailbox_never_double_process(env: BotEnv) -> None:
    for i in range(30):
        env.append(samples.form_submission(form(**{"Adresse e-mail": f"c{i}@example.org"})))
    command = [sys.executable, "-m", "bot", "--config", str(env.config_path), "run", "--once"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    for code, err in results:
        assert code == 0 or "another reclambot" in err, err
    env.run()  # whatever a refused run left
    assert len(env.complaints()) == 30
    for i in range(30):
        assert len(env.smtp.handler.to(f"c{i}@example.org")) == 1


# --- Outbox: SMTP failures ----------------------------------------------------------------------


def test_smtp_4xx_is_retried_with_backoff(env: BotEnv) -> None:
    import datetime as dt

    env.now = dt.datetime(2026, 11, 25, 10, 0)
    env.smtp.handler.fail_with = "451 4.3.0 Try again later"
    env.append(samples.form_submission())
    summary = env.run()
    assert summary.sent.deferred == 2 and env.smtp.handler.received == []
    rows = env.outbox()
    assert all(r.status == "pending" and r.attempts == 1 and "451" in r.last_error for r in rows)
    env.smtp.handler.fail_with = None
    env.run()
    assert env.smtp.handler.received == []  # not due yet
    env.now += dt.timedelta(minutes=2)
    env.run()
    assert len(env.smtp.handler.received) == 2
    assert {r.status for r in env.outbox()} == {"sent"}


def test_smtp_5xx_is_permanent_and_reported(env: BotEnv,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env.append(samples.form_submission())
    env.smtp.handler.refuse[CLIENT] = "550 5.1.1 No such user"
    env.run()
    env.run()
    rows = env.outbox()
    assert [(r.kind, r.status) for r in rows] == [
        ("acknowledgement", "failed"), ("director_new_complaint", "sent"),
        ("director_delivery_failure", "sent")]
    reports = [c for c in env.smtp.handler.to(DIRECTOR) if "Envoi refusé" in c.subject]
    assert len(reports) == 1 and CLIENT in reports[0].text() and "550" in reports[0].text()
    # A refusal of the director's own mail is never reported to her: that could loop.
    env.smtp.handler.refuse[DIRECTOR] = "550 5.2.2 Mailbox full"
    env.append(samples.form_submission(form(**{"Adresse e-mail": "paul@example.org"})))
    env.run()
    assert [r.kind for r in env.outbox()][3:] == ["acknowledgement", "director_new_complaint"]
    from bot.cli import main

    assert main(["--config", str(env.config_path), "outbox"]) == 0
    out = capsys.readouterr().out
    assert "en échec" in out and "550" in out and "2 courriel(s) non envoyé(s)" in out


@pytest.mark.parametrize("smtputf8", [True, False])
def test_an_accented_address_is_sent_with_smtputf8_or_refused_alone(
        env: BotEnv, smtputf8: bool) -> None:
    """jérôme@example.org (RFC 6531): sent where the server offers SMTPUTF8; elsewhere that
    one email fails with its reason, and the others of the pass still leave."""
    env.smtp.stop()
    env.smtp.options["enable_SMTPUTF8"] = smtputf8
    env.smtp.start()
    # Headers in raw UTF-8, as an SMTPUTF8 mail client writes them.
    env.append(samples.free_text(sender="jerome@example.org").replace(
        b"jerome@example.org", "jérôme@example.org".encode()))
    env.append(samples.free_text(sender="paul@example.org"))
    env.run()
    status = {r.to_address: (r.status, r.last_error) for r in env.outbox()}
    assert status["paul@example.org"][0] == "sent"
    if smtputf8:
        assert status["jérôme@example.org"][0] == "sent", status
        assert len(env.smtp.handler.to("jérôme@example.org")) == 1
    else:
        assert status["jérôme@example.org"][0] == "failed"
        assert "SMTPUTF8" in status["jérôme@example.org"][1]


def test_smtp_down_loses_nothing(env: BotEnv) -> None:
    from bot.errors import SinkError

    env.append(samples.form_submission())
    env.smtp.stop()
    with pytest.raises(SinkError, match=r"cannot connect to SMTP 127\.0\.0\.1"):
        env.run()
    assert len(env.complaints()) == 1  # registered and filed before the send failed
    assert {r.status for r in env.outbox()} == {"pending"}
    env.smtp.start()
    env.run()
    assert len(env.smtp.handler.received) == 2
    assert {r.status for r in env.outbox()} == {"sent"}


def test_a_send_stopped_midway_leaves_one_row_in_doubt(env: BotEnv) -> None:
    # One email's outcome and the next one's claim share a transaction: a process stopped
    # while it hands over the second email leaves the first booked as sent, the second
    # "sending" (sent again, marked interrupted) and the third untouched.
    from bot.intake.sources import make_source
    from bot.outbound.outbox import recover_interrupted, send_pending
    from bot.outbound.sinks import make_sink
    from bot.pipeline import process_mailbox

    for name in ("anne", "bruno", "chloe"):
        env.append(samples.free_text(sender=f"{name} <{name}@example.org>"))
    source = make_source(env.config)
    process_mailbox(env.app, source, sink=None)
    source.close()
    real = make_sink(env.config)
    handed: list[bytes] = []

    class Stopping:
        @contextlib.contextmanager
        def connect(self):  # type: ignore[no-untyped-def]
            with real.connect() as connection:
                class Once:
                    def send(self, envelope_from, recipients, raw):  # type: ignore[no-untyped-def]
                        if len(handed) == 1:
                            raise KeyboardInterrupt("stopped while handing over the second")
                        handed.append(raw)
                        connection.send(envelope_from, recipients, raw)
                yield Once()

    with pytest.raises(KeyboardInterrupt):
        send_pending(env.app, Stopping())
    assert [(r.status, r.interrupted) for r in env.outbox()] == [
        ("sent", False), ("sending", False), ("pending", False)]
    assert recover_interrupted(env.app) == 1
    assert send_pending(env.app, real).sent == 2
    assert [(r.status, r.interrupted) for r in env.outbox()] == [
        ("sent", False), ("sent", True), ("sent", False)]
    assert [len(env.smtp.handler.to(f"{n}@example.org")) for n in ("anne", "bruno", "chloe")
            ] == [1, 1, 1]


# --- Bad input ----------------------------------------------------------------------------------


def corpus() -> list[tuple[str, bytes]]:
    nested = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for depth in range(1, 3000):
        nested += (f"--b{depth - 1}\r\nContent-Type: multipart/mixed; "
                   f"boundary=b{depth}\r\n\r\n").encode()
    nested += b"--b2999\r\nContent-Type: text/plain\r\n\r\nfond\r\n"
    return [
        ("broken boundary", (
            b"From: Jeanne <jeanne.martin@example.org>\r\nSubject: Reclamation accueil\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"AAA\"\r\n\r\n"
            b"--BBB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Le texte de ma r\xc3\xa9clamation est ici.\r\n--BBB--\r\n")),
        ("missing From", b"Subject: Reclamation\r\nTo: reclamations@example.fr\r\n\r\nTexte.\r\n"),
        ("NUL bytes", b"From: nul@example.org\r\nSubject: R\x00eclamation\r\n\r\nTe\x00xte\r\n"),
        ("8-bit undeclared", (
            b"From: Hel\xe8ne <helene@example.org>\r\nSubject: R\xe9clamation facture\r\n\r\n"
            b"Tr\xe8s d\xe9\xe7ue par la facturation.\r\n")),
        ("3000 nested parts", b"From: deep@example.org\r\nSubject: Reclamation\r\n" + nested),
        ("header injection", (
            b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40example=2Ecom?= <eve@example.org>\r\n"
            b"Subject: =?utf-8?q?R=C3=A9clamation=0D=0ABcc:_victim@example.com?=\r\n\r\n"
            b"Texte.\r\n")),
        ("traversal attachment", samples.form_submission(
            form(**{"Adresse e-mail": "trav@example.org"}),
            attachments=[("../../etc/cron.d/x", "text/plain", b"* * * * * root rm -rf /\n")])),
        ("empty", b"\r\n"),
        ("garbage", os.urandom(2000)),
    ]


@pytest.mark.mailbox
def test_malformed_corpus_all_filed_batch_goes_on(env: BotEnv) -> None:
    # A server may refuse to store some of them (Cyrus refuses NUL bytes, as its LMTP
    # would at delivery): those never reach the bot.
    everything = corpus()
    messages = [m for m in everything[:4] if env.try_append(m[1])]
    env.append(samples.form_submission())  # a good one in the middle of the batch
    messages += [m for m in everything[4:] if env.try_append(m[1])]
    stored = {kind for kind, _ in messages}
    assert stored >= {kind for kind, _ in everything} - {"NUL bytes", "8-bit undeclared",
                                                          "garbage"}
    env.run()
    rows = env.inbound()
    assert len(rows) == len(messages) + 1  # every message accounted for
    assert all_server_messages(env) == len(messages) + 1  # nothing deleted
    assert env.folder("INBOX") == [] or all(r.action == "leave" for r in rows
                                            if r.folder == "")
    by_subject = {r.subject: r for r in rows}
    assert any(c.client_email == CLIENT for c in env.complaints())
    assert any(c.client_email == "trav@example.org" for c in env.complaints())
    contacts = {c.sender_email: c for c in env.contacts()}
    # Broken MIME: the body is kept, not lost.
    assert "jeanne.martin@example.org" in contacts
    kept_8bit = any(b"Hel\xe8ne" in raw for f in ("INBOX", PROCESSED, IGNORED, QUARANTINE)
                    for raw in env.folder(f))
    assert kept_8bit or env.server.layout.kind == "cyrus"
    if kept_8bit:  # Cyrus stores 8-bit header bytes as 'X' (its munge8bit): nothing to read
        # 8-bit undeclared: accents read, not replaced.
        assert contacts["helene@example.org"].sender_name == "Helène"
        assert "Réclamation facture" in by_subject
    assert "\ufffd" not in "".join(r.subject for r in rows)
    # Header injection: collapsed into one line; no Bcc reached the SMTP server.
    for captured in env.smtp.handler.received:
        assert "victim@example.com" not in captured.recipients
        assert captured.message["Bcc"] is None
    # No file outside the dossiers.
    for path in env.config.dossiers.rglob("*"):
        assert path.resolve().is_relative_to(env.config.dossiers.resolve())
    assert not any("cron.d" in str(p) for p in env.config.dossiers.rglob("*"))
    quarantined = [r for r in rows if r.action == "quarantine"]
    assert all(r.error for r in quarantined)


def test_broken_mime_text_is_kept_in_the_dossier(env: BotEnv) -> None:
    _, raw = corpus()[0]
    env.append(raw)
    env.run()
    [contact] = env.contacts()
    [eml] = (env.config.dossiers / contact.reference / "messages").iterdir()
    assert eml.read_bytes() == raw
    from bot.intake.message import parse_message

    assert "Le texte de ma réclamation est ici." in parse_message(raw).text


def test_undeclared_8bit_form_is_registered_with_its_accents(env: BotEnv) -> None:
    text = samples.form_text(form(**{"Nom et prénom": "Hélène Dupré"})).encode("cp1252")
    raw = (f"From: {FORM_SENDER}\r\nTo: {BOT}\r\nSubject: Formulaire\r\n\r\n").encode() + text
    env.append(raw)
    env.run()
    [complaint] = env.complaints()
    assert complaint.client_name == "Hélène Dupré"
    assert "Malgré deux relances" in complaint.description


@pytest.mark.mailbox
def test_oversized_message_stays_on_server_and_sender_is_told(env: BotEnv) -> None:
    with env.config_path.open("a") as out:
        out.write("\n[limits]\nmax_message_bytes = 200000\nmax_attachments = 2\n")
    env.restart()
    env.append(samples.form_submission(
        attachments=[("gros.pdf", "application/pdf", samples.pdf_bytes(300_000))]))
    env.append(samples.form_submission(
        form(**{"Adresse e-mail": "many@example.org"}),
        attachments=[(f"p{i}.pdf", "application/pdf", samples.pdf_bytes()) for i in range(3)]))
    env.run()
    assert env.complaints() == []
    assert len(env.folder(QUARANTINE)) == 2
    big = env.folder(QUARANTINE)[0]
    assert len(big) > 300_000  # the whole message is kept on the server
    answers = [c for c in env.smtp.handler.received if "trop volumineux" in c.subject]
    assert sorted(c.recipients[0] for c in answers) == [CLIENT, "many@example.org"]
    reasons = [r.rules[0]["reason"] for r in env.inbound()]
    assert "au-delà de max_message_bytes" in reasons[0]
    assert "au-delà de max_attachments" in reasons[1]


def test_imap_down_is_a_clear_transient_error(env: BotEnv) -> None:
    from bot.errors import SourceError

    with env.config_path.open("r+") as handle:
        text = handle.read().replace(f"port = {env.server.port}", "port = 1")
        handle.seek(0)
        handle.write(text)
        handle.truncate()
    env.restart()
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"IMAP 127\.0\.0\.1:1"):
        env.run()
    assert time.monotonic() - started < 10


def test_check_reports_one_line_per_problem(env: BotEnv, tmp_path,  # type: ignore[no-untyped-def]
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["--config", str(env.config_path), "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[1] for line in out]
    assert all(line.startswith("OK") for line in out)
    assert list(dict.fromkeys(names)) == [
        "config", "rules", "templates", "database", "dossiers", "oauth2", "mailbox",
        "namespace", "imap", "folder", "commands", "sending"]
    assert names.count("folder") == 3 and names.count("imap") == 6
    assert "non utilisé (connexion par mot de passe)" in out[5]

    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(env.config.templates_dir, templates)
    (templates / "response.txt").write_text("Bonjour {{ complaint.client_name }\n")
    text = env.config_path.read_text()
    text = text.replace(f"port = {env.server.port}", "port = 1")
    text = text.replace(f"port = {env.smtp.port}", "port = 2")
    env.config_path.write_text(text + f'\n[paths]\ntemplates = "{templates}"\n')
    assert main(["--config", str(env.config_path), "check"]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = {line.split()[1]: line for line in out if line.startswith("FAIL")}
    assert set(failed) == {"templates", "mailbox", "sending"}
    assert "templates/response.txt ligne 1" in failed["templates"]
    assert "IMAP 127.0.0.1:1" in failed["mailbox"]
    assert "cannot connect to SMTP 127.0.0.1:2" in failed["sending"]
    assert all("secret" not in line for line in out)


def test_run_survives_the_smtp_server_going_down(env: BotEnv) -> None:
    import threading

    from bot.ops.runner import run_forever

    stop = threading.Event()
    env.smtp.stop()
    worker = threading.Thread(target=run_forever, args=(env.app, stop), daemon=True)
    worker.start()
    try:
        env.append(samples.form_submission())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not env.complaints():
            time.sleep(0.1)
        assert len(env.complaints()) == 1  # handled while nothing could be sent
        time.sleep(1.5)  # it keeps trying, with a growing pause, and does not die
        assert worker.is_alive()
        env.smtp.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(env.smtp.handler.received) < 2:
            time.sleep(0.1)
        assert len(env.smtp.handler.received) == 2
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()


def test_json_logs_carry_the_ticket(env: BotEnv) -> None:
    import json

    with env.config_path.open("a") as out:
        out.write('\n[logging]\nformat = "json"\n')
    env.append(samples.form_submission())
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(env.config_path), "run", "--once"],
        capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    registered = [r for r in records if r["message"].startswith("registered")]
    assert len(registered) == 1 and registered[0]["ticket"].startswith("REC-")
    assert {"time", "level", "logger", "ticket", "message"} <= set(records[0])
    assert all(CLIENT not in r["message"] for r in records)


def test_status_shows_poll_complaints_outbox_quarantine_and_errors(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from bot.reporting.status import record_error

    env.append(samples.form_submission())
    env.append(b"\r\n")
    env.run()
    record_error(env.app, "IMAP imap.example.fr:993 (bot): timed out")
    assert main(["--config", str(env.config_path), "status"]) == 0
    out = capsys.readouterr().out
    [complaint] = env.complaints()
    assert "Dernière relève" in out and "jamais" not in out
    assert f"{complaint.number}" in out and "réponse avant le" in out
    assert "envoyé 2" in out
    assert "Quarantaine             1" in out
    assert "timed out" in out


@pytest.mark.mailbox
def test_large_message_is_fetched_in_pieces_byte_for_byte(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.intake.sources.imap import ImapSource

    # The real thresholds are megabytes: scaled down, the same code runs in a blink.
    monkeypatch.setattr(ImapSource, "PIECEWISE_ABOVE", 50_000)
    monkeypatch.setattr(ImapSource, "PIECE", 16_384)
    pdf = samples.pdf_bytes(120_000)
    raw = samples.form_submission(attachments=[("rapport.pdf", "application/pdf", pdf)])
    env.append(raw)
    env.run()
    [complaint] = env.complaints()
    folder = env.app.dossiers.folder(complaint.number)
    [stored] = list((folder / "messages").glob("*.eml"))
    assert stored.read_bytes().replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    [attachment] = list((folder / "pieces-jointes").glob("*rapport.pdf"))
    assert attachment.read_bytes() == pdf


def test_a_message_mail_parser_cannot_read_is_read_by_the_standard_library(
        memory: MemoryEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """mail-parser raised on two real SendGrid bounces (its epilogue handling): the
    message is read with Python's email package instead of going to quarantine, and its
    row says so."""
    import bot.intake.message as message_module
    from bot.store.models import Inbound

    class Broken:
        @staticmethod
        def from_bytes(data: bytes) -> None:
            raise AttributeError("'NoneType' object has no attribute 'index'")

    monkeypatch.setattr(message_module, "_walker", lambda: Broken)
    raw = samples.free_text(sender="jeanne.martin@example.org",
                            attachments=[("piece.pdf", "application/pdf", samples.pdf_bytes())])
    parsed = message_module.parse_message(raw)
    assert parsed.parser.startswith("email (mail-parser : AttributeError")
    assert "RÉCLAMATION" in parsed.subject.upper() and parsed.text
    assert [a.filename for a in parsed.attachments] == ["piece.pdf"]
    memory.deliver(raw)
    [row] = memory.query(Inbound)
    assert row.action == "new_contact"
    assert "parsed_by_email" in [r["rule"] for r in row.rules]
