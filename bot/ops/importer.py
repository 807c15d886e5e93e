"""``reclambot import``: past mail (an mbox or a Maildir) through the pipeline, once.

The register gets what the procedure would have recorded; what the bot would have
answered is kept in the outbox as ``imported``, never sent.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import CursorResult, func, select, update

from bot.core.states import OutboxStatus
from bot.intake.sources.archive import ArchiveSource
from bot.ops.lock import ProcessLock
from bot.pipeline import RunSummary, process_mailbox
from bot.store.models import Outbox

if TYPE_CHECKING:
    from bot.app import App


def open_archive(path: Path) -> ArchiveSource:
    """The archive at ``path`` (its length is its number of messages)."""
    return ArchiveSource(path)


def import_archive(app: App, source: ArchiveSource,
                   progress: Callable[[int], None] | None = None) -> tuple[RunSummary, int]:
    """Import ``source``; the run's summary, and how many emails were kept unsent."""
    with ProcessLock(app), closing(source):
        with app.sessions() as session:
            before = session.scalar(select(func.max(Outbox.id))) or 0
        summary = process_mailbox(app, source, sink=None, progress=progress)
        with app.transaction() as session:
            result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
                update(Outbox).where(Outbox.id > before, Outbox.status == OutboxStatus.PENDING)
                .values(status=OutboxStatus.IMPORTED))
            return summary, result.rowcount
