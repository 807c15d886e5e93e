"""``reclambot status``: is the bot healthy? Last poll, open complaints, outbox, quarantine,
last errors, in one readable table."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from bot.models import Complaint, Inbound, Outbox, Setting

if TYPE_CHECKING:
    from bot.app import App

MAX_ERRORS = 10


def record_setting(app: App, key: str, value: str) -> None:
    """Keep one small value (last poll...) in the database."""
    with app.transaction() as session:
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value))
        else:
            row.value = value


def record_error(app: App, message: str) -> None:
    """Remember a failure for ``reclambot status`` (the last ten are kept)."""
    try:
        with app.transaction() as session:
            row = session.get(Setting, "last_errors")
            errors = json.loads(row.value) if row else []
            errors = [[app.clock().isoformat(timespec="seconds"), message[:300]], *errors]
            value = json.dumps(errors[:MAX_ERRORS], ensure_ascii=False)
            if row is None:
                session.add(Setting(key="last_errors", value=value))
            else:
                row.value = value
    except Exception:  # the database may be what failed: the log has it anyway
        pass


def status_lines(app: App) -> list[str]:
    """The report, as lines of text."""
    from bot.deadlines import next_deadline
    from bot.export import cell
    from bot.render import local

    today = local(app.clock()).date()
    with app.sessions() as session:
        last_poll = session.get(Setting, "last_poll")
        errors_row = session.get(Setting, "last_errors")
        complaints = session.scalars(
            select(Complaint).where(Complaint.status.in_(("open", "answered")))
            .order_by(Complaint.year, Complaint.sequence)).all()
        outbox = dict(session.execute(
            select(Outbox.status, func.count(Outbox.id)).group_by(Outbox.status)).all())
        quarantined = session.scalars(
            select(Inbound).where(Inbound.action.in_(("quarantine", "too_large")))
            .order_by(Inbound.id.desc()).limit(5)).all()
        quarantine_count = session.scalar(select(func.count(Inbound.id)).where(
            Inbound.action.in_(("quarantine", "too_large"))))
        polled = cell(dt.datetime.fromisoformat(last_poll.value)) if last_poll else "jamais"
        lines = [f"{'Dernière relève':<24}{polled}"]
        lines.append(f"{'Réclamations ouvertes':<24}{len(complaints)}")
        for c in complaints:
            deadline = next_deadline(c, app.rulebook)
            due = f"{deadline[0]} avant le {deadline[1]:%d/%m/%Y}" if deadline else "—"
            late = "  EN RETARD" if deadline and deadline[1] < today else ""
            lines.append(f"  {c.number:<16}{c.status:<10}{due}{late}")
        lines.append(f"{'Envois':<24}" + (", ".join(f"{k} {v}" for k, v in sorted(outbox.items()))
                                           or "aucun"))
        lines.append(f"{'Quarantaine':<24}{quarantine_count or 0}")
        for row in quarantined:
            reason = row.rules[0]["reason"] if row.rules else row.error
            lines.append(f"  {cell(row.processed_at)}  uid {row.uid}: {reason[:70]}")
        errors = json.loads(errors_row.value) if errors_row else []
        lines.append(f"{'Dernières erreurs':<24}{len(errors) or 'aucune'}")
        for when, message in errors[:5]:
            lines.append(f"  {when}  {message[:90]}")
    return lines
