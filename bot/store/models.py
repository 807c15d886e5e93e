"""The database: the register of complaints and everything needed to prove how it was kept.

Datetimes are stored as naive UTC; dates (deadlines, answer dates) are calendar dates in
Europe/Paris. Tables:

- ``complaints``: the register ("dossier des Réclamations"), one row per conforming ticket.
- ``contacts``: initial free-text contacts, answered with the form link.
- ``tickets``: submissions of the form that are not conforming yet (never in the register).
- ``inbound``: every message the bot has looked at, with the rules that decided its fate.
- ``outbox``: every email the bot sends, fully rendered, committed with the state change.
- ``events``: the append-only history of every change, with its origin.
- ``counters`` and ``mailbox_state``: number sequences and IMAP watermarks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Complaint(Base):
    """One row of the register, with every element the procedure lists."""

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    # open -> answered -> closed (and back with #rouvrir); requalified: not a complaint after all
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    # Numéro et date de réception du ticket (conforme)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    form_version: Mapped[str] = mapped_column(String(32))
    # Date de réclamation initiale, mode de réclamation initiale et sa référence
    initial_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    initial_mode: Mapped[str] = mapped_column(String(200), default="")
    initial_reference: Mapped[str] = mapped_column(String(64), default="")
    # Who complains
    client_name: Mapped[str] = mapped_column(String(300))
    client_email: Mapped[str] = mapped_column(String(320), index=True)
    phone: Mapped[str] = mapped_column(String(64), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    category: Mapped[str] = mapped_column(String(32))
    acting_as: Mapped[str] = mapped_column(String(32), default="")
    is_consumer: Mapped[bool | None] = mapped_column(Boolean)
    # What about
    object: Mapped[str] = mapped_column(Text)
    product: Mapped[str] = mapped_column(Text)
    parties_involved: Mapped[str] = mapped_column(Text, default="")
    training_actions: Mapped[str] = mapped_column(Text)
    facts_date: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text)
    expected_solution: Mapped[str] = mapped_column(Text, default="")
    # Handling (filled by the director's commands; failures and actions have their own tables)
    response_outcome: Mapped[str] = mapped_column(String(16), default="")
    response_text: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    response_date: Mapped[dt.date | None] = mapped_column(Date)
    response_number: Mapped[str] = mapped_column(String(32), default="")
    documents_location: Mapped[str] = mapped_column(String(500), default="")
    # Time
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    acknowledge_due: Mapped[dt.date | None] = mapped_column(Date)
    answer_due: Mapped[dt.date | None] = mapped_column(Date)
    mediation_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    unreachable_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    answer_due_initial: Mapped[dt.date | None] = mapped_column(Date)
    extension_reason: Mapped[str] = mapped_column(Text, default="")
    satisfaction_asked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    satisfaction: Mapped[str] = mapped_column(String(32), default="")
    satisfaction_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    #: How many times the director renewed the complaint's command key (``#nouvellecle``):
    #: a key of an earlier generation opens nothing.
    key_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    object_category: Mapped[str] = mapped_column(String(100), default="")
    relationship_ended_on: Mapped[dt.date | None] = mapped_column(Date)
    legal_hold: Mapped[str] = mapped_column(Text, default="")
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    requalified_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)

    # Loaded with their complaint: the register, reports and templates always show them.
    failures: Mapped[list[Failure]] = relationship(order_by="Failure.id", lazy="selectin")
    actions: Mapped[list[ActionTaken]] = relationship(order_by="ActionTaken.day, ActionTaken.id",
                                                      lazy="selectin")

    __table_args__ = (UniqueConstraint("year", "sequence"),)


class Failure(Base):
    """A failure of the organisation identified by the director (``#manquement``)."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(998), default="")


class ActionTaken(Base):
    """An action taken about a complaint, with its date (``#action``)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(998), default="")


class Contact(Base):
    """An initial, free-text complaint: answered with the form link, not in the register."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sender_email: Mapped[str] = mapped_column(String(320), index=True)
    sender_name: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: How it reached the organisation when not written to the mailbox: «Courriel,
    #: transmis par … le …», «courrier, transmis par …» ("": the mailbox's own mode).
    mode: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: When the bot opened it (``received_at`` is the author's date, weeks earlier for a
    #: forward); ``None`` on rows from before 0006, opened when received.
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    # To link a complaint not written yet (see Inbound.complaint).
    complaint: Mapped[Complaint | None] = relationship(lazy="raise")


class Ticket(Base):
    """A form submission that is not conforming yet: it waits for more information."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    complainant_email: Mapped[str] = mapped_column(String(320), default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="incomplete")
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    complaint: Mapped[Complaint | None] = relationship(lazy="raise")  # see Inbound.complaint


class Inbound(Base):
    """One message seen in a mailbox, and what the bot decided about it, and why."""

    __tablename__ = "inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[str] = mapped_column(String(32))
    uid: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(998), default="")
    sender: Mapped[str] = mapped_column(String(320), default="", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(32))
    #: The rules that matched, the deciding one first: ``[{"rule", "reason"}, …]``.
    rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: The names of the rules that ran and did not match (``None`` on rows from before 0003).
    rules_passed: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    folder: Mapped[str] = mapped_column(String(300), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    # committed (handled, not filed yet) -> done (filed); a quarantined message put back
    # through the pipeline by `reclambot quarantine retry`: InboundState.RETRIED.
    state: Mapped[str] = mapped_column(String(16), default="committed")
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Set to an object not written yet, these let the message's single flush write the new
    # complaint (contact, ticket) first and then this row with its link: no flush in the
    # middle of a handler just to learn an id, and no UPDATE of this row afterwards.
    complaint: Mapped[Complaint | None] = relationship(lazy="raise")
    contact: Mapped[Contact | None] = relationship(lazy="raise")
    ticket: Mapped[Ticket | None] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)


class Outbox(Base):
    """An email to send, rendered in full and committed with the change that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    to_address: Mapped[str] = mapped_column(String(320), index=True)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # pending -> sending -> sent; failed (refused for good); a crash leaves "sending"
    status: Mapped[str] = mapped_column(String(16), default="pending")
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who took it to send (``run``, or ``web:<host>:<pid>``) and when (0003).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class Event(Base):
    """Append-only history: what changed, when, and which message caused it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(998), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))


class Counter(Base):
    """A named sequence (``REC-2026``): incremented under a row lock, never reused."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class JobRun(Base):
    """A scheduled job done for one day: running it again that day does nothing."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Erasure(Base):
    """What the retention purge or a GDPR erasure removed: never the data itself."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    reference: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    what: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Setting(Base):
    """A value the bot generated once and must keep (e.g. the token secret when not configured)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Lock(Base):
    """Who works on this database: one bot process at a time (see ``bot.ops.lock``)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)


class MailboxState(Base):
    """The highest UID fully handled in a mailbox, valid for one UIDVALIDITY."""

    __tablename__ = "mailbox_state"

    mailbox: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[str] = mapped_column(String(32))
    last_uid: Mapped[int] = mapped_column(Integer, default=0)


class DossierFile(Base):
    """One file of a dossier kept in the register (``[storage] dossiers = "database"``):
    ``path`` inside the dossier as the folder store names it (``messages/….eml``)."""

    __tablename__ = "dossier_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[dt.datetime] = mapped_column(DateTime)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("reference", "path"),)
