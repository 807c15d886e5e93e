"""Time in the procedure: deadlines, reminders, satisfaction, retention, indicators, reports.

Through the real servers of the suite, with the jobs run "as of" chosen days. Messages are
appended with their arrival time in the past (September 2026): an IMAP server keeps the
time it is given for the past, but not for the future.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.outbound.outbox import send_pending
from bot.outbound.sinks import make_sink
from bot.procedure import gdpr, jobs
from bot.procedure.jobrun import job_moment
from bot.procedure.purge import purge
from bot.reporting.report import build_report, register_workbook, write_csv
from bot.store.models import Complaint, Erasure, Event, Ticket
from bot.testing import samples
from tests.conftest import DIRECTOR, BotEnv
from tests.servers import Captured
from tests.test_director import command, register

pytestmark = pytest.mark.integration

CLIENT = "jeanne.martin@example.org"


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    """Naive UTC for ``hour`` o'clock in Paris on ``day``."""
    return job_moment(day) + dt.timedelta(hours=hour - 7)


def run_job(env: BotEnv, job: Callable[..., Any], day: dt.date) -> list[Captured]:
    """Run a job as of ``day`` and send what it queued; return the emails received."""
    env.now = job_moment(day)
    before = len(env.smtp.handler.received)
    job(env.app, day)
    send_pending(env.app, make_sink(env.app.config))
    return env.smtp.handler.received[before:]


def digests(emails: list[Captured]) -> list[Captured]:
    return [c for c in emails if "point du" in c.subject]


def test_christmas_eve_ticket(env: BotEnv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    # Thursday 24 December, before Christmas Day and a weekend, as in 2026; the last such
    # Christmas Eve in the past was 2020's, so the form version is made valid then (a rules
    # change, as an organisation would make it).
    rules = tmp_path / "rules"
    shutil.copytree(env.config.rules_dir, rules)
    forms = (rules / "forms.toml").read_text().replace("valid_from = 2026-01-01",
                                                       "valid_from = 2020-01-01")
    (rules / "forms.toml").write_text(forms)
    with env.config_path.open("a") as out:
        out.write(f'\n[paths]\nrules = "{rules}"\n')
    env.restart()
    env.now = at(dt.date(2020, 12, 24))
    register(env)
    [complaint] = env.complaints()
    assert complaint.acknowledge_due == dt.date(2020, 12, 29)
    assert complaint.answer_due == dt.date(2021, 1, 11)  # 1 January is a holiday too
    [ack] = env.smtp.handler.to(CLIENT)
    assert "lundi 11 janvier 2021" in ack.text()
    [notice] = [c for c in env.smtp.handler.to(DIRECTOR) if "Nouvelle" in c.subject]
    assert "lundi 11 janvier 2021" in notice.text()


def test_answered_in_time_gets_no_alert(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    env.now = at(dt.date(2026, 9, 24))
    command(env, notification, "#reponse positive\nC'est fait.\n")
    for day in (dt.date(2026, 9, 28), dt.date(2026, 10, 1)):
        sent = run_job(env, jobs.remind, day)
        assert all("REC-" not in c.text() for c in digests(sent))


def test_overdue_complaint_reminder_then_alert_each_once(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    register(env)
    [complaint] = env.complaints()
    assert complaint.answer_due == dt.date(2026, 9, 30)

    assert digests(run_job(env, jobs.remind, dt.date(2026, 9, 24))) == []  # too early
    [reminder] = digests(run_job(env, jobs.remind, dt.date(2026, 9, 28)))
    assert "Échéances proches" in reminder.text() and complaint.number in reminder.text()
    assert f"[{complaint.number}/" in reminder.text()  # the command tag, to act at once
    assert digests(run_job(env, jobs.remind, dt.date(2026, 9, 28))) == []  # same day again
    assert digests(run_job(env, jobs.remind, dt.date(2026, 9, 29))) == []  # already reminded
    [alert] = digests(run_job(env, jobs.remind, dt.date(2026, 10, 1)))
    assert "Échéances dépassées" in alert.text() and "en retard" in alert.subject
    assert digests(run_job(env, jobs.remind, dt.date(2026, 10, 2))) == []  # alerted once
    # In #liste as well.
    answer = command(env, register_notification(env), "#liste\n")
    assert answer is not None and "EN RETARD" in answer.text()


def register_notification(env: BotEnv) -> Captured:
    return next(c for c in env.smtp.handler.to(DIRECTOR) if "Nouvelle réclamation" in c.subject)


def test_extension_and_its_two_month_limit(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    env.now = at(dt.date(2026, 9, 25))
    answer = command(env, notification, "#prolonger 5 Expertise du formateur en cours\n")
    assert answer is not None and "prolongé au 07/10/2026" in answer.text()
    [complaint] = env.complaints()
    assert complaint.answer_due == dt.date(2026, 10, 7)
    assert complaint.answer_due_initial == dt.date(2026, 9, 30)
    [notice] = [c for c in env.smtp.handler.to(CLIENT) if "nouveau délai" in c.subject]
    assert "mercredi 7 octobre 2026" in notice.text() and "Expertise" in notice.text()
    answer = command(env, notification, "#prolonger 40 Encore\n")
    assert answer is not None and "Commande refusée" in answer.subject
    assert "dépasserait 2 mois après le ticket (16/11/2026)" in answer.text()
    assert env.complaints()[0].answer_due == dt.date(2026, 10, 7)


def test_incomplete_ticket_reminded_once_then_abandoned(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 1))
    env.append(samples.form_submission(dict(samples.COMPLETE_FORM, Description="")))
    env.run()
    assert run_job(env, jobs.followup, dt.date(2026, 9, 4)) == []
    [reminder] = run_job(env, jobs.followup, dt.date(2026, 9, 9))
    assert reminder.recipients == [CLIENT] and "Rappel" in reminder.subject
    assert run_job(env, jobs.followup, dt.date(2026, 9, 10)) == []
    run_job(env, jobs.followup, dt.date(2026, 9, 16))
    [ticket] = env.query(Ticket)
    assert ticket.status == "abandoned"
    assert env.complaints() == []  # never in the register
    [digest] = digests(run_job(env, jobs.remind, dt.date(2026, 9, 17)))
    assert "1 ticket(s) ou premier(s) contact(s) sans suite" in digest.text()


def test_satisfaction_round_trip(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    command(env, notification, "#reponse positive\nVotre attestation est partie.\n")
    assert run_job(env, jobs.followup, dt.date(2026, 9, 21)) == []
    [question] = run_job(env, jobs.followup, dt.date(2026, 9, 23))
    assert question.recipients == [CLIENT] and "satisfait" in question.subject
    env.now = at(dt.date(2026, 9, 24))
    env.append(samples.reply(question.data, "Je mets 4/5, merci pour votre réactivité.",
                             sender=f"Jeanne Martin <{CLIENT}>", quote="> Êtes-vous satisfait"))
    env.run()
    [complaint] = env.complaints()
    assert complaint.satisfaction == "4"
    assert run_job(env, jobs.followup, dt.date(2026, 10, 1)) == []  # never a second one


def test_no_answer_to_satisfaction_is_recorded_as_none(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    command(env, register(env), "#reponse positive\nOK\n")
    run_job(env, jobs.followup, dt.date(2026, 9, 23))
    with env.app.sessions() as session:
        report = build_report(session, env.app, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    assert report.breakdowns["Satisfaction"] == {"sans réponse": 1}


def personal_traces(env: BotEnv) -> list[str]:
    """Where the complainant's data can still be read: database files, dossiers."""
    needles = [b"Jeanne", b"jeanne.martin", b"Malgr\xc3\xa9 deux relances", b"06 12 34 56 78"]
    found = []
    database = env.config.database_url.removeprefix("sqlite:///")
    if env.config.database_url.startswith("sqlite"):
        for path in (database, database + "-wal"):
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                continue
            found += [f"{path}: {n!r}" for n in needles if n in data]
    else:
        from sqlalchemy import text

        with env.app.engine.connect() as conn:
            for table in ("complaints", "contacts", "tickets", "inbound", "outbox", "events",
                          "failures"):
                dump = str(conn.execute(text(f"SELECT * FROM {table}")).all()).encode()
                found += [f"{table}: {n!r}" for n in needles if n in dump]
    for path in env.config.dossiers.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def test_purge_one_year_after_closure(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    env.now = at(dt.date(2026, 9, 18))
    command(env, notification, "#manquement Retard d'envoi\n#action 2026-09-17 Attestation "
                               "envoyée\n#reponse negative\nNon.\n#cloturer Réglé\n")
    [complaint] = env.complaints()
    assert personal_traces(env)  # the data are there...

    run_job(env, purge, dt.date(2027, 9, 17))
    assert env.complaints()[0].purged_at is None  # a day too early
    run_job(env, purge, dt.date(2027, 9, 18))
    env.restart()
    [row] = env.complaints()
    assert row.purged_at is not None and row.client_name == "" and row.description == ""
    # ...and now gone from the database and the dossiers; the pseudonymised row stays.
    assert personal_traces(env) == []
    assert not (env.config.dossiers / complaint.number).exists()
    assert (row.number, row.category, row.object_category, row.response_outcome) == (
        complaint.number, "stagiaire", "Documents administratifs", "négative")
    assert row.training_actions.startswith("Sophrologie")
    assert [a.text for a in row.actions] == ["Attestation envoyée"]
    assert len(row.failures) == 1 and row.response_date == dt.date(2026, 9, 18)
    [erasure] = env.query(Erasure)
    assert erasure.reference == complaint.number and "dossier" in erasure.what[0]
    assert "Jeanne" not in json.dumps(erasure.what)
    # Three years later the pseudonymised row goes too.
    run_job(env, purge, dt.date(2030, 9, 18))
    env.restart()
    assert env.complaints() == []


def test_legal_hold_suspends_the_purge(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    command(env, notification, "#cloturer\n#conserver Litige en cours devant le tribunal\n")
    run_job(env, purge, dt.date(2028, 1, 1))
    assert env.complaints()[0].purged_at is None
    assert env.query(Event, Event.kind == "legal_hold")
    command(env, notification, "#liberer\n")
    run_job(env, purge, dt.date(2028, 1, 2))
    assert env.complaints()[0].purged_at is not None


def test_gdpr_export_and_erase(env: BotEnv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main

    env.append(samples.form_submission(attachments=[("preuve.pdf", "application/pdf",
                                                     samples.pdf_bytes())]))
    env.append(samples.free_text(sender=f"Jeanne <{CLIENT}>", subject="Réclamation bis"))
    env.run()
    archive = tmp_path / "jeanne.zip"
    count = gdpr.export(env.app, CLIENT, archive)
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        data = json.loads(z.read("donnees.json"))
    assert count == len(names)
    assert data["complaints"][0]["client_name"] == "Jeanne Martin"
    assert len(data["contacts"]) == 1
    assert any(n.startswith("messages-envoyes/") for n in names)
    assert any(n.endswith("preuve.pdf") for n in names)

    config = ["--config", str(env.config_path)]
    assert main([*config, "gdpr", "erase", "--email", CLIENT]) == 2  # no terminal, no --yes
    assert "--yes" in capsys.readouterr().err
    assert main([*config, "gdpr", "erase", "--email", CLIENT, "--yes"]) == 0
    env.restart()
    assert personal_traces(env) == []
    with env.app.sessions() as session:
        assert gdpr.find(session, CLIENT).empty()


def build_register(env: BotEnv) -> None:
    """Three complaints in September 2026 with known outcomes, one in August."""
    env.now = at(dt.date(2026, 8, 20))
    register(env, **{"Adresse e-mail": "aug@example.org"})
    env.now = at(dt.date(2026, 9, 1))  # Tuesday: answer due 15/09
    first = register(env, **{"Adresse e-mail": "a@example.org"})
    second = register(env, **{"Adresse e-mail": "b@example.org",
                              "Objet de la réclamation": "Facture erronée"})
    third = register(env, **{"Adresse e-mail": "c@example.org",
                             "Objet de la réclamation": "Dates des sessions ?"})
    env.now = at(dt.date(2026, 9, 7))  # 4 working days
    command(env, first, "#action 2026-09-04 Attestation renvoyée\n#reponse positive\nOK\n")
    env.now = at(dt.date(2026, 9, 21))  # 14 working days: late
    command(env, second, "#manquement Erreur de saisie\n#reponse negative\nNon.\n")
    command(env, third, "#requalifier Demande d'information\n")


def test_report_figures_match_the_register(env: BotEnv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    build_register(env)
    with env.app.sessions() as session:
        report = build_report(session, env.app, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
        workbook = register_workbook(session, env.app, report)
    f = report.figures
    assert (f["received"], f["conforming"], f["requalified"], f["answered"]) == (3, 2, 1, 2)
    assert f["answer median (working days)"] == 9.0  # 4 and 14
    assert f["answered within the deadline (%)"] == 50.0
    assert (f["outcome positive"], f["outcome negative"]) == (1, 1)
    assert f["informed of mediation (%)"] == 100.0
    assert f["led to a corrective action (%)"] == 50.0
    assert f["failures identified"] == 1
    assert report.breakdowns["Par catégorie d'objet"] == {
        "Documents administratifs": 1, "Facturation et financement": 1}
    assert ("Documents administratifs", 2) in report.recurring  # August's too
    assert report.html.count('src="data:image/png;base64,iVBOR') == 3  # three real PNGs
    out = io.StringIO()
    write_csv(report, out)
    rows = list(csv.reader(io.StringIO(out.getvalue()), delimiter=";"))
    assert ["Indicateurs", "Réponses dans le délai (%)", "50.0"] in rows

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(workbook))
    assert book.sheetnames == ["Registre", "Actions", "Indicateurs"]
    assert book["Registre"].freeze_panes == "B2"
    assert book["Registre"]["A1"].value == "Numéro du ticket"
    assert book["Registre"].max_row == 4  # three complaints and the header
    assert book["Actions"]["C2"].value == "Attestation renvoyée"


def test_report_and_export_commands(env: BotEnv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main

    build_register(env)
    config = ["--config", str(env.config_path)]
    assert main([*config, "report", "--period", "2026-09", "--output", str(tmp_path)]) == 0
    html = tmp_path / "rapport-reclamations-2026-09-01-2026-09-30.html"
    assert html.exists() and (html.with_suffix(".csv")).exists()
    assert main([*config, "export", "--format", "pdf", "--output", str(tmp_path / "r.pdf")]) == 0
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 1
    assert main([*config, "export", "--format", "xlsx", "--output", str(tmp_path / "r.xlsx")]) == 0
    assert (tmp_path / "r.xlsx").read_bytes().startswith(b"PK")
    assert main([*config, "remind", "--as-of", "2026-09-11"]) == 0
    out = capsys.readouterr().out
    assert "rappels du 11/09/2026" in out
    assert main([*config, "remind", "--as-of", "2026-09-11"]) == 0
    assert "déjà fait pour ce jour" in capsys.readouterr().out


def test_monthly_report_on_the_first_working_day(env: BotEnv) -> None:
    build_register(env)
    assert run_job(env, jobs.monthly_report, dt.date(2026, 10, 2)) == []  # not the first
    [mail] = run_job(env, jobs.monthly_report, dt.date(2026, 10, 1))
    assert mail.recipients == [DIRECTOR] and "09/2026" in mail.subject
    names = [p.get_filename() for p in mail.message.iter_attachments()]
    assert names == ["registre-reclamations-2026-09.xlsx", "rapport-reclamations-2026-09.html"]
    assert run_job(env, jobs.monthly_report, dt.date(2026, 10, 1)) == []  # idempotent
    # January 2027 starts on a holiday and a weekend: Monday 4th is the first working day.
    assert run_job(env, jobs.monthly_report, dt.date(2027, 1, 1)) == []
    assert len(run_job(env, jobs.monthly_report, dt.date(2027, 1, 4))) == 1


def test_reopened_complaints_are_counted(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    notification = register(env)
    command(env, notification, "#cloturer\n")
    command(env, notification, "#rouvrir Le client rappelle\n")
    with env.app.sessions() as session:
        report = build_report(session, env.app, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    assert report.figures["reopened"] == 1
    assert env.query(Complaint)[0].reopened_count == 1


def test_quarantine_is_reported_in_the_digest(env: BotEnv) -> None:
    env.now = at(dt.date(2026, 9, 16))
    env.append(b"\r\n")  # not an email at all
    env.run()
    [digest] = digests(run_job(env, jobs.remind, dt.date(2026, 9, 17)))
    assert "quarantaine" in digest.text() and "MessageError" in digest.text()
    assert digests(run_job(env, jobs.remind, dt.date(2026, 9, 18))) == []  # told once


def test_a_failing_job_does_not_stop_the_others(env: BotEnv,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env.now = at(dt.date(2026, 9, 16))
    register(env)

    def broken(app, day):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(jobs, "followup", broken)
    results = jobs.run_daily(env.app, dt.date(2026, 9, 28))
    assert [r.job for r in results] == ["remind", "purge", "monthly_report"]
    assert results[0].counts["reminders"] == 1


def test_import_a_past_year_sends_nothing(env: BotEnv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import mailbox

    from bot.cli import main

    export = tmp_path / "archive.mbox"
    box = mailbox.mbox(export)
    march = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
    box.add(samples.form_submission(date=march))
    box.add(samples.free_text(sender="Paul <paul@example.org>", date=march))
    box.add(samples.free_text(subject="Question", date=march))
    box.flush()
    box.close()
    config = ["--config", str(env.config_path)]
    assert main([*config, "import", "--mbox", str(export)]) == 0
    out = capsys.readouterr().out
    assert "3 message(s) importé(s)" in out and "3 courriel(s) non envoyé(s)" in out
    [complaint] = env.complaints()
    assert complaint.received_at == dt.datetime(2026, 3, 10, 9, 30)
    assert complaint.answer_due == dt.date(2026, 3, 24)
    assert len(env.contacts()) == 1
    assert {r.status for r in env.outbox()} == {"imported"}
    send_pending(env.app, make_sink(env.app.config))
    assert env.smtp.handler.received == []
    assert main([*config, "import", "--mbox", str(export)]) == 0  # again: nothing new
    assert "0 message(s) importé(s)" in capsys.readouterr().out
    assert len(env.complaints()) == 1
