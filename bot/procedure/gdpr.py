"""The rights of a person (RGPD): everything held about an address, exported or erased."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from bot.core.states import ContactStatus, TicketStatus
from bot.procedure.purge import erase_complaint, erase_pending, remove_dossiers
from bot.store.db import compact
from bot.store.models import Complaint, Contact, Event, Inbound, Outbox, Ticket

if TYPE_CHECKING:
    from bot.app import App


@dataclass
class Holdings:
    """What the register holds about one address."""

    complaints: list[Complaint] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    outbox: list[Outbox] = field(default_factory=list)

    def references(self) -> list[str]:
        return ([c.number for c in self.complaints] + [t.reference for t in self.tickets]
                + [c.reference for c in self.contacts])

    def empty(self) -> bool:
        return not (self.complaints or self.tickets or self.contacts or self.inbound
                    or self.outbox)


def find(session: Session, address: str) -> Holdings:
    """Every row that concerns ``address`` (case-insensitive)."""
    address = address.strip().lower()
    complaints = session.scalars(select(Complaint).where(Complaint.client_email == address)).all()
    ids = [c.id for c in complaints]
    tickets = session.scalars(select(Ticket).where(
        (Ticket.complainant_email == address) | Ticket.complaint_id.in_(ids))).all()
    contacts = session.scalars(select(Contact).where(
        (Contact.sender_email == address) | Contact.complaint_id.in_(ids))).all()
    inbound = session.scalars(select(Inbound).where(
        (Inbound.sender == address) | Inbound.complaint_id.in_(ids))).all()
    outbox = session.scalars(select(Outbox).where(
        (Outbox.to_address == address) | Outbox.complaint_id.in_(ids))).all()
    return Holdings(list(complaints), list(tickets), list(contacts), list(inbound), list(outbox))


def _row(obj: object) -> dict[str, Any]:
    data = {}
    for column in inspect(type(obj)).columns:
        value = getattr(obj, column.key)
        if isinstance(value, bytes):
            continue  # message copies go in as .eml files
        if isinstance(value, dt.date | dt.datetime):
            value = value.isoformat()
        data[column.key] = value
    return data


def export(app: App, address: str, output: Path,
           progress: Callable[[int, int], None] | None = None) -> int:
    """Write everything held about ``address`` into one zip archive; return the file count."""
    with app.sessions() as session:
        held = find(session, address)
        ids = [c.id for c in held.complaints]
        events = session.scalars(select(Event).where(Event.complaint_id.in_(ids))).all()
        data = {
            "address": address,
            "exported_at": app.clock().isoformat(),
            "complaints": [{**_row(c), "failures": [f.text for f in c.failures],
                            "actions": [{"day": a.day.isoformat(), "text": a.text}
                                        for a in c.actions]} for c in held.complaints],
            "tickets": [_row(t) for t in held.tickets],
            "contacts": [_row(c) for c in held.contacts],
            "messages_received": [_row(i) for i in held.inbound],
            "messages_sent": [_row(o) for o in held.outbox],
            "history": [_row(e) for e in events],
        }
        sent = [(o.id, o.kind, o.raw) for o in held.outbox if o.raw]
    dossiers: list[tuple[str, int]] = []
    for reference in held.references():
        if app.dossiers.exists(reference):
            dossiers.append((reference, len(app.dossiers.names(reference))))
    count = 0
    total = sum(size for _, size in dossiers) + len(sent) + 1
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("donnees.json", json.dumps(data, ensure_ascii=False, indent=2))
        count += 1
        for row_id, kind, raw in sent:
            archive.writestr(f"messages-envoyes/{row_id:06d}-{kind}.eml", raw)
            count += 1
            if progress:
                progress(count, total)
        for reference, _ in dossiers:
            for name, content in app.dossiers.files(reference):
                archive.writestr(f"dossiers/{reference}/{name}", content)
                count += 1
                if progress:
                    progress(count, total)
    return count


_ERASED = (ContactStatus.ERASED, TicketStatus.ERASED)


def erase(app: App, address: str) -> tuple[list[str], list[str]]:
    """Erase what concerns ``address``; return (erased references, refused under legal hold)."""
    now = app.clock()
    erased, held_back = [], []
    dossiers: list[str] = []
    with app.transaction() as session:
        held = find(session, address)
        for complaint in held.complaints:
            if complaint.legal_hold:
                held_back.append(complaint.number)
                continue
            if complaint.purged_at is None:
                erase_complaint(session, app, complaint, now, "demande RGPD", dossiers)
            erased.append(complaint.number)
        pending: list[Ticket | Contact] = [*held.tickets, *held.contacts]
        for row in pending:
            if row.complaint_id is None and row.status not in _ERASED:
                erase_pending(session, app, row, now, "demande RGPD", dossiers)
                erased.append(row.reference)
        for message in held.inbound:  # messages linked to nothing (robots, untagged)
            if message.sender == address.strip().lower():
                message.sender, message.subject, message.message_id = "", "", ""
        for sent in held.outbox:
            if sent.to_address == address.strip().lower():
                sent.raw, sent.recipients, sent.to_address, sent.subject = b"", [], "", ""
    remove_dossiers(app, dossiers)  # committed: the dossiers go now
    compact(app.engine)
    return erased, held_back
