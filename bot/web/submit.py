"""A submission of the web form: checked with the rules every form is checked with, then
put through the pipeline with the fields it was checked with, so that it enters the
register exactly as an emailed form does (same handlers, same transaction, same outbox).
It is also written as the email a form plugin would send: that is the dossier's record
of it, with its time and the client's address, never read back for its fields (a value
that looked like another field's line would otherwise have become that field)."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import functools
import hashlib
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.intake.classify import WEB_FORM_HEADER, classify_web_form
from bot.intake.sources.base import RawMessage
from bot.pipeline import finish_batch, handle_batch
from bot.rulebook.form import Problem, Validation, validate
from bot.store.models import Complaint, Inbound

if TYPE_CHECKING:
    from bot.app import App
    from bot.rulebook import FormVersion

#: The mailbox name the register gives web submissions (beside the IMAP folder's).
MAILBOX = "web:reclamation"
UIDVALIDITY = "1"
ATTACHMENTS = "pieces"


@dataclass(frozen=True)
class Upload:
    """A file the complainant attached: its name is hers, and never chooses a path."""

    filename: str
    content_type: str
    data: bytes


class WebSource:
    """The one message of a submission, as the pipeline asks a source for it.

    There is nothing to file on a server: the message lives in the register and its
    dossier only.
    """

    mailbox = MAILBOX
    ordered = False

    def can_idle(self) -> bool:
        return False

    def uidvalidity(self) -> str:
        return UIDVALIDITY

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        return iter(())

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        """Nothing to move."""

    def present(self, uids: list[str]) -> set[str]:
        return set()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Never waited on."""

    def close(self) -> None:
        """Nothing to release."""


def check(app: App, values: dict[str, str], uploads: Sequence[Upload], day: dt.date
          ) -> Validation:
    """The same checks as an emailed form (:func:`bot.rulebook.form.validate`), and the
    attachments against ``[limits]``."""
    validation = validate(values, app.rulebook, day)
    limits = app.config.limits
    problems = list(validation.problems)
    label = "Pièces justificatives"
    if len(uploads) > limits.max_attachments:
        problems.append(Problem(ATTACHMENTS, label, f"{limits.max_attachments} fichiers au plus"))
    if sum(len(u.data) for u in uploads) > limits.max_message_bytes:
        size = limits.max_message_bytes // (1024 * 1024) or 1
        problems.append(Problem(ATTACHMENTS, label, f"{size} Mo en tout au plus"))
    for upload in uploads:
        if len(upload.data) > limits.max_attachment_bytes:
            size = limits.max_attachment_bytes // (1024 * 1024) or 1
            problems.append(Problem(ATTACHMENTS, label,
                                    f"« {upload.filename} » dépasse {size} Mo"))
    return Validation(validation.version, validation.values, tuple(problems))


def _text(version: FormVersion, values: dict[str, str]) -> str:
    """The body a form plugin writes: one ``Label : value`` per field."""
    lines = []
    for f in version.fields:
        value = values.get(f.key, "")
        if value:
            lines.append(f"{f.label} : {value}")
    return "\n".join(lines) + "\n"


def digest(validation: Validation, uploads: Sequence[Upload]) -> str:
    """What a submission says, in 16 hex digits: its validated fields and its files."""
    content = hashlib.sha256()
    for key, value in sorted(validation.values.items()):
        content.update(f"{key}\0{value}\0".encode())
    for upload in uploads:
        content.update(f"{upload.filename}\0".encode() + hashlib.sha256(upload.data).digest())
    return content.hexdigest()[:16]


def message_id(app: App, submission: str, content: str) -> str:
    """The Message-ID of a submission's record: its id and its :func:`digest`, so that the
    register tells a page posted again from the same page posted with other content."""
    domain = app.config.organisation.bot_address.rpartition("@")[2]
    return f"<{submission}.{content}.web@{domain}>"


def message_of(app: App, validation: Validation, uploads: Sequence[Upload], client: str,
               submission: str, now: dt.datetime) -> bytes:
    """The submission as the email a form plugin would send: what the dossier keeps."""
    assert validation.version is not None
    values = validation.values
    org = app.config.organisation
    # An address with accents is written in UTF-8 (RFC 6532): SMTP's policy would refuse it.
    policy = email.policy.SMTP if values["email"].isascii() else email.policy.SMTPUTF8
    msg = EmailMessage(policy=policy)
    local, _, domain = values["email"].rpartition("@")
    msg["From"] = Address(display_name=values.get("client_name", ""), username=local,
                          domain=domain)
    msg["To"] = org.bot_address
    msg["Subject"] = f"RÉCLAMATION — formulaire en ligne (version {validation.version.id})"
    msg["Date"] = email.utils.format_datetime(now.replace(tzinfo=dt.UTC))
    msg["Message-ID"] = message_id(app, submission, digest(validation, uploads))
    # The audit trail: from which address, which page, when (UTC).
    msg[WEB_FORM_HEADER] = f"{client}; submission={submission}; received={now:%Y-%m-%dT%H:%M:%SZ}"
    msg.set_content(_text(validation.version, values))
    for upload in uploads:
        maintype, subtype = _file_type(upload.content_type)
        msg.add_attachment(upload.data, maintype=maintype, subtype=subtype,
                           filename=upload.filename)
    return msg.as_bytes()


_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}$")


def _file_type(declared: str) -> tuple[str, str]:
    """The type a file is kept with. The browser's word for it is the person's: a
    ``message/…`` or ``multipart/…`` type would make the record a structure (a delivery
    report, an enclosed email) instead of a file, and a malformed one would not be
    written at all, so those are kept as bytes (``application/octet-stream``)."""
    maintype, _, subtype = (declared or "").strip().lower().partition("/")
    if (maintype in ("message", "multipart") or not _TOKEN.match(maintype)
            or not _TOKEN.match(subtype)):
        return "application", "octet-stream"
    return maintype, subtype


def registered(app: App, submission: str) -> str | None:
    """The complaint number a submission entered the register as, if it did."""
    with app.sessions() as session:
        return session.scalar(
            select(Complaint.number).join(Inbound, Inbound.complaint_id == Complaint.id)
            .where(Inbound.mailbox == MAILBOX, Inbound.uidvalidity == UIDVALIDITY,
                   Inbound.uid == submission))


def posted_before(app: App, submission: str) -> str | None:
    """The Message-ID of what this page's submission was, if it was already posted."""
    with app.sessions() as session:
        return session.scalar(
            select(Inbound.message_id)
            .where(Inbound.mailbox == MAILBOX, Inbound.uidvalidity == UIDVALIDITY,
                   Inbound.uid == submission))


def register(app: App, raw: bytes, submission: str, now: dt.datetime,
             fields: dict[str, str]) -> str | None:
    """Put the submission through the pipeline once, with the ``fields`` the page
    validated (``raw``, its message, is the dossier's record of it, never read back);
    its complaint number.

    The submission id is the message's UID: a second post of the same page (a double
    click, a reload) finds the first one's row, and is not handled again.
    """
    number = registered(app, submission)
    if number is not None:
        return number
    source = WebSource()
    message = RawMessage(submission, raw, now, size=len(raw))
    decide = functools.partial(classify_web_form, fields=dict(fields))
    try:
        outcomes = handle_batch(app, source, UIDVALIDITY, [message], decide=decide)
    except IntegrityError:
        return registered(app, submission)  # the same page posted twice at once
    finish_batch(app, source, outcomes)
    return registered(app, submission)
