"""``reclambot demo``: the whole pipeline on a local Maildir and SQLite, no server needed."""

from __future__ import annotations

import datetime as dt
import mailbox
from pathlib import Path

from sqlalchemy import select

from bot.app import App, build_app
from bot.config import load_config
from bot.core.states import ACTION_LABELS, ComplaintStatus, EmailKind, OutboxStatus, state_label
from bot.ops.runner import run_once
from bot.store.models import Complaint, Inbound, Outbox
from bot.testing import samples

DEMO_CONFIG = """\
# Configuration written by `reclambot demo`: a local Maildir stands in for the mail server.
[organisation]
name = "SophroAttitude"
bot_address = "reclamations@example.fr"
director_name = "Claire Durand"
director_addresses = ["direction@example.fr"]
form_url = "https://www.example.fr/reclamation"
form_senders = ["no-reply@example.fr"]
contact = "direction@example.fr ou 01 23 45 67 89"

[bot]
source = "maildir"
sink = "maildir"

[maildir]
inbox = "maildir/inbox"
outbox = "maildir/outbox"

[database]
url = "sqlite:///reclambot.sqlite3"

[storage]
dossiers = "dossiers"

[web]
# `reclambot --config reclambot-demo/config.toml serve` serves the official form here.
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
"""


def seed_messages() -> list[tuple[str, bytes]]:
    """The sample inbox: what a complaints mailbox receives on an ordinary day."""
    incomplete = dict(samples.COMPLETE_FORM)
    incomplete.update({
        "Nom et prénom": "Paul Bernard",
        "Adresse e-mail": "paul.bernard@example.com",
        "Qualité": "Client",
        "Entreprise / organisme": "Bernard Conseil SARL",
        "Objet de la réclamation": "Facturation en double",
        "Description": "",
        "Consentement RGPD": "",
        "Vous agissez en tant que": "Professionnel",
    })
    html_form = dict(samples.COMPLETE_FORM)
    html_form.update({
        "Nom et prénom": "Sophie Leroy",
        "Adresse e-mail": "sophie.leroy@example.net",
        "Qualité": "Financeur",
        "Entreprise / organisme": "OPCO Exemple",
        "Objet de la réclamation": "Feuilles d'émargement incomplètes",
        "Vous agissez en tant que": "Professionnel",
    })
    return [
        ("texte libre avec l'étiquette RÉCLAMATION", samples.free_text(
            sender="Lucie Petit <lucie.petit@example.org>",
            subject="TR: Réclamation : accueil lors de la session du 12 novembre")),
        ("formulaire complet (texte brut)", samples.form_submission()),
        ("formulaire complet (HTML) avec une pièce jointe", samples.form_submission(
            html_form, as_html=True,
            attachments=[("../../etc/émargement novembre.pdf", "application/pdf",
                          samples.pdf_bytes())])),
        ("formulaire incomplet", samples.form_submission(incomplete)),
        ("message sans étiquette", samples.free_text(
            sender="Marc Blanc <marc.blanc@example.com>", subject="Demande de devis",
            body="Bonjour,\nPourriez-vous m'envoyer un devis pour une formation ?\n")),
        ("réponse d'absence", samples.free_text(
            sender="Absent <absent@example.com>",
            subject="Réponse automatique : Réclamation",
            body="Je suis absent jusqu'au 1er décembre.\n",
            headers={"Auto-Submitted": "auto-replied"})),
    ]


DIRECTOR_REPLY = """\
Bonjour,

#manquement L'attestation n'a pas été envoyée à la fin de la session.
#action {today} Attestation envoyée par courriel et par courrier.
#reponse partielle
Madame,
Votre attestation vous a été envoyée ce jour. Le dédommagement demandé ne peut pas
être accordé, mais la prochaine session de suivi vous est offerte.
#cloturer Attestation transmise ; envoi automatique des attestations mis en place.

--
Claire Durand
"""


def director_answers(app: App, directory: Path) -> str:
    """Put the director's reply to the first notification in the inbox (the demo's act two)."""
    with app.sessions() as session:
        notice = session.scalar(
            select(Outbox).where(Outbox.kind == EmailKind.DIRECTOR_NEW_COMPLAINT)
            .order_by(Outbox.id)
        )
        complaint = session.get(Complaint, notice.complaint_id) if notice else None
    if notice is None or complaint is None:
        return ""
    body = DIRECTOR_REPLY.format(today=dt.date.today().isoformat())
    raw = samples.reply(notice.raw, body, sender=app.config.organisation.director_addresses[0],
                        quote="Le message de reclambot a écrit :\n> (notification)")
    mailbox.Maildir(directory / "maildir" / "inbox", create=False).add(raw)
    return complaint.number


def run_demo(directory: Path) -> str:
    """Create (or reuse) the demo folder, run the pipeline once, return a readable summary."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "config.toml"
    seeded = []
    if not config_path.exists():
        config_path.write_text(DEMO_CONFIG, encoding="utf-8")
        (directory / "maildir").mkdir(exist_ok=True)
        inbox = mailbox.Maildir(directory / "maildir" / "inbox", create=True)
        for label, raw in seed_messages():
            inbox.add(raw)
            seeded.append(label)
    config = load_config(config_path)
    app = build_app(config)
    try:
        summary = run_once(app)
        lines = [f"Dossier de la démonstration : {directory.resolve()}"]
        if seeded:
            lines.append(f"Boîte de réception garnie de {len(seeded)} messages : "
                         + " ; ".join(seeded))
        lines.append(f"{summary.fetched} message(s) traité(s) ; "
                     f"{summary.sent.sent} courriel(s) envoyé(s).")
        if seeded:
            answered = director_answers(app, directory)
            if answered:
                second = run_once(app)
                lines.append(f"Puis la direction a répondu sur {answered} par courriel : "
                             f"{second.fetched} message(s) traité(s) ; "
                             f"{second.sent.sent} courriel(s) envoyé(s).")
        with app.sessions() as session:
            lines.append("\nMessages reçus et décisions (raisons enregistrées pour l'audit) :")
            for row in session.scalars(select(Inbound).order_by(Inbound.id)):
                where = row.folder or "laissé dans la boîte de réception"
                why = " ; ".join(m["reason"] for m in row.rules)
                action = ACTION_LABELS.get(row.action, row.action)
                lines.append(f"  - {row.subject[:60]!r}\n      -> {action} ({where}) : {why}")
            lines.append("\nRegistre :")
            complaints = session.scalars(select(Complaint).order_by(Complaint.id)).all()
            for c in complaints:
                answer = (f"réponse {c.response_number} ({c.response_outcome})"
                          if c.response_number else f"réponse due le {c.answer_due:%d/%m/%Y}")
                lines.append(f"  {c.number}  {state_label(ComplaintStatus, c.status):10} "
                             f"{c.client_name}  «{c.object}»  {answer}  "
                             f"dossier {c.documents_location}")
            if not complaints:
                lines.append("  (vide)")
            sent_dir = directory / "emails-envoyes"
            sent_dir.mkdir(exist_ok=True)
            lines.append(f"\nCourriels envoyés (copies .eml dans {sent_dir}) :")
            for sent in session.scalars(select(Outbox).order_by(Outbox.id)):
                path = sent_dir / f"{sent.id:03d}-{sent.kind}.eml"
                path.write_bytes(sent.raw)
                lines.append(f"  {state_label(OutboxStatus, sent.status):10} {path.name}  à "
                             f"{', '.join(sent.recipients)} : {sent.subject}")
        lines.append(f"\nExport du registre : reclambot --config {config_path} export --format pdf")
        web = app.config.web
        lines.append(f"Formulaire en ligne et pages de suivi : reclambot --config {config_path} "
                     f"serve, puis ouvrez {web.public_url}/reclamation")
        lines.append(f"Édité le {dt.datetime.now():%d/%m/%Y à %H:%M}.")
        return "\n".join(lines)
    finally:
        app.close()
