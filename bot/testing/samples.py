"""Realistic sample messages: the demo's seed, and the raw material of tests and benchmarks.

Each builder returns the bytes of one email, as a complainant's mail client or the
website's form plugin would send it.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import uuid
from email.message import EmailMessage

COMPLETE_FORM: dict[str, str] = {
    "Version du formulaire": "2026-01",
    "Nom et prénom": "Jeanne Martin",
    "Adresse e-mail": "jeanne.martin@example.org",
    "Téléphone": "06 12 34 56 78",
    "Qualité": "Stagiaire",
    "Entreprise / organisme": "",
    "Objet de la réclamation": "Attestation de formation non reçue",
    "Contrat, produit ou service concerné": "Convention de formation n° 2026-114",
    "Action(s) de formation concernée(s)": (
        "Sophrologie : gestion du stress (session de septembre 2026)"
    ),
    "Intervenants concernés": "Cabinet Bienrelax (formateur)",
    "Date des faits": "30/09/2026",
    "Description": (
        "J'ai terminé la formation le 30 septembre.\n"
        "Malgré deux relances, je n'ai toujours pas reçu mon attestation de fin de formation,\n"
        "dont j'ai besoin pour mon employeur."
    ),
    "Solution attendue": "Recevoir l'attestation sous huit jours.",
    "Consentement RGPD": "Oui",
    "Vous agissez en tant que": "Particulier",
    "Référence": "",
}


def _message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str | None = None,
    html: str | None = None,
    reply_to: str | None = None,
    date: dt.datetime | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2].strip('>')}>"
    if reply_to:
        msg["Reply-To"] = reply_to
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for filename, content_type, data in attachments or []:
        maintype, subtype = content_type.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def free_text(
    sender: str = "Jeanne Martin <jeanne.martin@example.org>",
    to: str = "reclamations@example.fr",
    subject: str = "RÉCLAMATION - attestation de formation",
    body: str | None = None,
    **kwargs: object,
) -> bytes:
    """A complaint written as a plain email."""
    body = body or (
        "Bonjour,\n\nJe n'ai toujours pas reçu mon attestation de fin de formation "
        "alors que la session s'est terminée le 30 septembre.\nMerci de faire le nécessaire.\n\n"
        "Jeanne Martin\n"
    )
    return _message(sender=sender, to=to, subject=subject, text=body, **kwargs)  # type: ignore[arg-type]


def form_text(fields: dict[str, str]) -> str:
    """The plain-text body a form plugin writes: one ``Label : value`` per line."""
    return "\n".join(f"{label} : {value}" for label, value in fields.items()) + "\n"


def form_html(fields: dict[str, str]) -> str:
    """The HTML body a form plugin writes: one table row per field."""
    import html

    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th>"
        f"<td>{html.escape(value).replace(chr(10), '<br>')}</td></tr>"
        for label, value in fields.items()
    )
    return (
        "<html><body><p>Nouvelle soumission du formulaire Réclamation</p>"
        f"<table>\n{rows}\n</table></body></html>"
    )


def form_submission(
    fields: dict[str, str] | None = None,
    *,
    sender: str = "Site SophroAttitude <no-reply@example.fr>",
    to: str = "reclamations@example.fr",
    subject: str = "Nouvelle réclamation depuis le site",
    as_html: bool = False,
    attachments: list[tuple[str, str, bytes]] | None = None,
    **kwargs: object,
) -> bytes:
    """A submission of the official form, as the website's form plugin emails it."""
    fields = dict(COMPLETE_FORM if fields is None else fields)
    reply_to = fields.get("Adresse e-mail") or None
    if as_html:
        return _message(sender=sender, to=to, subject=subject, html=form_html(fields),
                        reply_to=reply_to, attachments=attachments, **kwargs)  # type: ignore[arg-type]
    return _message(sender=sender, to=to, subject=subject, text=form_text(fields),
                    reply_to=reply_to, attachments=attachments, **kwargs)  # type: ignore[arg-type]


def reply(
    original: bytes,
    body: str,
    *,
    sender: str,
    quote: str = "",
    **kwargs: object,
) -> bytes:
    """A reply to ``original`` (threading headers set, subject with ``Re:``)."""
    import email as email_module

    parsed = email_module.message_from_bytes(original, policy=email.policy.default)
    text = body + ("\n\n" + quote if quote else "")
    return _message(
        sender=sender,
        to=str(parsed["From"]),
        subject=f"Re: {parsed['Subject']}",
        text=text,
        in_reply_to=str(parsed["Message-ID"]),
        **kwargs,  # type: ignore[arg-type]
    )


def pdf_bytes(size: int = 2048) -> bytes:
    """A small, valid-looking PDF payload of about ``size`` bytes."""
    head = b"%PDF-1.4\n% reclambot sample\n"
    return head + b"0" * max(0, size - len(head) - 6) + b"\n%%EOF"


def delivery_report(original: bytes, failed: str, *, permanent: bool = True,
                    reporting: str = "mx.example.org") -> bytes:
    """A standard DSN (RFC 3464) about ``original``, as a mail server sends it back."""
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii", "replace")
    status = "5.1.1" if permanent else "4.4.1"
    action = "failed" if permanent else "delayed"
    boundary = uuid.uuid4().hex
    text = f"""\
From: Mail Delivery System <MAILER-DAEMON@{reporting}>
To: reclamations@example.fr
Subject: Undelivered Mail Returned to Sender
Message-ID: <{uuid.uuid4().hex}@{reporting}>
Date: {email.utils.format_datetime(dt.datetime.now(dt.UTC))}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered to {failed}.

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporting}

Final-Recipient: rfc822; {failed}
Original-Recipient: rfc822; {failed}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{failed}>: Recipient address rejected

--{boundary}
Content-Type: text/rfc822-headers

{head}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("utf-8")


#: The original of :func:`staff_forward`: a trainee's complaint written to the
#: secretariat, not to the complaints mailbox.
TRAINEE = "Léa Martin <lea.martin@example.org>"
TRAINEE_COMPLAINT = ("Bonjour,\nLa session du 2 décembre a été annulée sans que personne ne "
                     "me prévienne : j'ai fait le déplacement pour rien.\nLéa Martin\n")


def staff_forward(
    original: str = TRAINEE,
    body: str = TRAINEE_COMPLAINT,
    *,
    sender: str = "Sophie Accueil <secretariat@example.fr>",
    subject: str = "TR: RÉCLAMATION session annulée",
    note: str = "Pour traitement, merci.",
    attached: bool = False,
    written: dt.datetime = dt.datetime(2026, 12, 3, 9, 12, tzinfo=dt.UTC),
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    """A member of staff forwards a complaint she received: inline as Outlook writes it
    in French («De : … Envoyé : … À : … Objet :»), or ``attached`` as message/rfc822."""
    staff_address = email.utils.parseaddr(sender)[1]
    if attached:
        enclosed = email.message_from_bytes(_message(
            sender=original, to=staff_address, subject="Session annulée", text=body,
            date=written), policy=email.policy.SMTP)
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = sender
        msg["To"] = "reclamations@example.fr"
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.fr>"
        msg.set_content(f"{note}\n")
        msg.add_attachment(enclosed)
        for filename, content_type, data in attachments or []:
            maintype, subtype = content_type.split("/", 1)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return msg.as_bytes()
    paris = written.astimezone(dt.timezone(dt.timedelta(hours=1)))
    days = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
    months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")
    sent = (f"{days[paris.weekday()]} {paris.day} {months[paris.month - 1]} {paris.year} "
            f"{paris:%H:%M}")
    text = (f"{note}\n\n________________________________\nDe : {original}\nEnvoyé : {sent}\n"
            f"À : {sender}\nObjet : Session annulée\n\n{body}")
    return _message(sender=sender, to="reclamations@example.fr", subject=subject, text=text,
                    attachments=attachments)
