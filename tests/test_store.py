"""The database without surprises: the batch's row buffer is its own object and touches
no other session; no model method flushes; dossier folders go only after commit; dossier
files, written by a thread of their own, are there before a message is filed."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from bot.core.states import ComplaintStatus
from bot.procedure import purge as purge_module
from bot.procedure.purge import purge
from bot.store.db import RowBuffer, append_row, held_count
from bot.store.dossier import DatabaseDossiers, Dossiers, DossierWrites
from bot.store.models import Complaint, Contact, Event, Inbound
from bot.testing import samples
from tests.conftest import MemoryEnv

LATER = dt.date.today() + dt.timedelta(days=3 * 366)


def closed_complaint(env: MemoryEnv) -> Complaint:
    """A complaint registered from the form, closed at once: its dossier is on disk."""
    env.deliver(samples.form_submission())
    with env.app.transaction() as session:
        session.execute(update(Complaint).values(status=ComplaintStatus.CLOSED,
                                                 closed_at=env.app.clock()))
    [complaint] = env.query(Complaint)
    assert env.app.dossiers.folder(complaint.number).is_dir()
    return complaint


def test_a_purge_rolled_back_leaves_every_dossier_file(memory: MemoryEnv,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    complaint = closed_complaint(memory)
    folder = memory.app.dossiers.folder(complaint.number)
    files = sorted(folder.rglob("*"))
    # A second complaint, pseudonymised long ago: deleting its row fails after the first
    # complaint was erased in the same transaction.
    memory.deliver(samples.form_submission({**samples.COMPLETE_FORM,
                                            "Adresse e-mail": "paul@example.net"}))
    with memory.app.transaction() as session:
        session.execute(update(Complaint).where(Complaint.id != complaint.id).values(
            status=ComplaintStatus.CLOSED, closed_at=dt.datetime(2020, 1, 1),
            purged_at=dt.datetime(2020, 1, 1)))

    def fail(*args: object) -> None:
        raise OSError("disque plein")

    monkeypatch.setattr(purge_module, "delete_pseudonymised", fail)
    with pytest.raises(OSError):
        purge(memory.app, LATER)
    assert sorted(folder.rglob("*")) == files  # the transaction rolled back: files stay
    first = memory.query(Complaint, Complaint.id == complaint.id)[0]
    assert first.client_email and first.purged_at is None  # and so did the erasure


def test_folders_a_crash_left_after_commit_are_erased_by_the_next_purge(
        memory: MemoryEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    complaint = closed_complaint(memory)
    folder = memory.app.dossiers.folder(complaint.number)
    with monkeypatch.context() as crash:
        crash.setattr(purge_module, "remove_dossiers", lambda app, references: 0)
        purge(memory.app, LATER - dt.timedelta(days=700))
    [row] = memory.query(Complaint)
    assert row.purged_at is not None and row.client_email == ""
    assert folder.is_dir()  # committed, then the process died before the folders went
    purge(memory.app, LATER - dt.timedelta(days=699))
    assert not folder.exists()


def test_the_row_buffer_listens_to_its_own_session_only(memory: MemoryEnv) -> None:
    import bot.pipeline  # noqa: F401  everything the bot registers at import

    with memory.app.transaction() as held:
        assert len(held.dispatch.do_orm_execute) == 0  # nothing on every session
        buffer = RowBuffer.hold(held)
        assert len(held.dispatch.do_orm_execute) == 1
        assert len(Session().dispatch.do_orm_execute) == 0  # another session: nothing
        append_row(held, Event, at=memory.app.clock(), kind="note", origin="x", detail={})
        assert held_count(held, Event, kind="note") == 1
        # A query of its own session on the table writes the held row first.
        assert [e.kind for e in held.scalars(select(Event))] == ["note"]
        assert held_count(held, Event, kind="note") == 0
        buffer.release()
        assert len(held.dispatch.do_orm_execute) == 0


def test_a_message_without_message_id_is_named_by_its_row(memory: MemoryEnv) -> None:
    raw = samples.free_text().replace(b"Message-ID:", b"X-Old-Message-ID:")
    memory.deliver(raw)
    [row] = memory.query(Inbound)
    [event] = memory.query(Event, Event.kind == "initial_contact")
    assert row.message_id == "" and event.origin == f"inbound:{row.id}"


# --- Dossier writes beside the pipeline ---------------------------------------------------


def test_a_message_is_filed_only_once_its_dossier_is_written(
        memory: MemoryEnv, caplog: pytest.LogCaptureFixture) -> None:
    # The writer thread cannot create the dossiers folder (a file stands in its place):
    # the message is registered and answered, but stays in the inbox, its row committed,
    # until a later pass writes its dossier; nobody is answered twice. The copy of the
    # answer is not written either, and said so (the register keeps it: outbox.raw).
    root = memory.app.config.dossiers
    root.write_text("pas un dossier")
    summary = memory.deliver(samples.free_text(sender="anne@example.org"))
    assert "copy of form_link (1) not kept in dossier" in caplog.text
    assert summary.unfiled == 1
    assert len(memory.source.folder("INBOX")) == 1
    assert [row.state for row in memory.query(Inbound)] == ["committed"]
    root.unlink()
    summary = memory.deliver()
    assert summary.unfiled == 0 and memory.source.folder("INBOX") == []
    [row] = memory.query(Inbound)
    assert row.state == "done"
    [contact] = memory.query(Contact)
    names = memory.app.dossiers.names(contact.reference)
    assert [n.split("/")[0] for n in names] == ["messages"]
    assert len(memory.sink.to("anne@example.org")) == 1


def test_every_sent_copy_is_in_its_dossier_when_the_pass_returns(memory: MemoryEnv) -> None:
    for i in range(12):  # more than one batch of 5
        memory.source.deliver(samples.free_text(sender=f"c{i}@example.org"))
    summary = memory.deliver()
    assert summary.sent.sent == 12
    for contact in memory.query(Contact):
        names = memory.app.dossiers.names(contact.reference)
        assert len([n for n in names if n.startswith("envois/")]) == 1, names
        assert len([n for n in names if n.startswith("messages/")]) == 1, names


def test_dossier_writes_run_in_order_and_report_their_failures(tmp_path: Path) -> None:
    store = Dossiers(tmp_path / "dossiers")
    writes = DossierWrites(store)
    seen: list[int] = []
    def slow_write() -> None:
        time.sleep(0.05)  # the next write is asked long before this one ends
        seen.append(1)

    slow = writes.submit(slow_write)
    fast = writes.submit(seen.append, 2)

    def failing() -> None:
        raise OSError("disque plein")

    failed = writes.submit(failing)
    writes.wait()
    assert seen == [1, 2] and slow.done() and fast.done()
    with pytest.raises(OSError, match="disque plein"):
        failed.result()
    writes.close()
    # The database store writes in the caller's thread, at once.
    inline = DossierWrites(DatabaseDossiers(create_engine("sqlite://")))
    here: list[str] = []
    inline.submit(lambda: here.append(threading.current_thread().name))
    assert here == [threading.current_thread().name]
    with pytest.raises(OSError):
        inline.submit(failing).result()
    # So does the folder store, for a caller that waits at once (finish_batch alone).
    here.clear()
    DossierWrites(store, background=False).submit(
        lambda: here.append(threading.current_thread().name))
    assert here == [threading.current_thread().name]


def test_one_pass_finds_every_email_s_dossier_in_three_queries(memory: MemoryEnv) -> None:
    # Emails of a contact left alone, of a contact whose complaint absorbed it, and of a
    # complaint: each copy goes to the dossier its entry is in now, asked for all at once.
    from sqlalchemy import event

    from bot.outbound.outbox import dossier_references
    from bot.store.models import Outbox

    memory.deliver(samples.free_text(sender="Anne <anne@example.org>"),
                   samples.free_text(sender="Bruno <bruno@example.org>"),
                   samples.form_submission())
    [complaint] = memory.query(Complaint)
    anne, bruno = sorted(memory.query(Contact), key=lambda c: c.sender_email)
    with memory.app.transaction() as session:
        session.execute(update(Contact).where(Contact.id == anne.id)
                        .values(complaint_id=complaint.id))
    rows = memory.query(Outbox)
    expected = {}
    for row in rows:
        contact = {anne.id: anne, bruno.id: bruno}.get(row.contact_id)
        if row.complaint_id is not None or contact is anne:
            expected[row.id] = complaint.number
        else:
            expected[row.id] = contact.reference if contact is not None else None
    assert set(expected.values()) >= {complaint.number, bruno.reference}
    statements: list[str] = []
    with memory.app.engine.connect() as connection:
        event.listen(connection, "before_cursor_execute",
                     lambda *args: statements.append(args[2]))
        assert dossier_references(connection, {row.id: row for row in rows}) == expected
    assert 1 <= len(statements) <= 3, statements
