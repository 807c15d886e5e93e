"""The bot on every kind of IMAP server users have: namespaces, missing extensions, filing
that fails, ``check`` and the quarantine commands.

Tests marked ``mailbox`` run against each server of the matrix (``tests.servers.LAYOUTS``):
Debian's Dovecot as installed (separator '.'), Dovecot with an ``INBOX.`` prefix, with
'/', without MOVE, without MOVE/UIDPLUS/IDLE/NAMESPACE, Cyrus IMAP and Courier-IMAP. Each
test compares what the bot did with the server's own names, as its users see them.
"""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.intake.sources.folders import Namespace
from bot.store.models import Event, Inbound
from bot.testing import samples
from tests.conftest import DIRECTOR, BotEnv
from tests.servers import Dovecot

pytestmark = pytest.mark.integration

PROCESSED = "Réclamations/Traitées"
IGNORED = "Réclamations/Ignorées"
QUARANTINE = "Réclamations/Quarantaine"
CLIENT = "jeanne.martin@example.org"


def server_folders(env: BotEnv) -> dict[str, tuple[bytes, ...]]:
    """Every folder of the account, by its server name, with its flags."""
    client = env.imap()
    try:
        return {name: flags for flags, _delimiter, name in client.list_folders()}
    finally:
        client.logout()


def deleted_originals(env: BotEnv) -> list[tuple[bytes, ...]]:
    """Flags of the messages of INBOX flagged \\Deleted (left by a server without UIDPLUS)."""
    client = env.imap()
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["DELETED"])
        return list(client.get_flags(uids).values()) if uids else []
    finally:
        client.logout()


@pytest.mark.mailbox
def test_folders_are_created_in_the_servers_namespace(env: BotEnv) -> None:
    env.append(samples.form_submission())
    env.append(samples.free_text(subject="Réponse automatique : RÉCLAMATION",
                                 sender="Paul <paul@example.org>",
                                 headers={"Auto-Submitted": "auto-replied"}))
    env.append(samples.free_text(subject="Demande de devis"))  # stays for humans
    env.run()

    folders = server_folders(env)
    layout = env.server.layout
    assert layout.folder(PROCESSED) in folders
    assert layout.folder(IGNORED) in folders
    assert len(env.folder(PROCESSED)) == 1 and len(env.folder(IGNORED)) == 1
    assert len(env.folder("INBOX")) == 1
    # Nothing else was created: no folder under a spelling the server does not use.
    expected = {"INBOX", layout.folder(PROCESSED), layout.folder(IGNORED),
                layout.folder("Réclamations")}
    assert set(folders) <= expected
    [ack] = env.smtp.handler.to(CLIENT)
    assert "REC-" in ack.subject


@pytest.mark.mailbox
def test_filed_originals_leave_the_inbox_or_stay_flagged_where_no_uidplus(env: BotEnv) -> None:
    for i in range(7):  # more than one batch
        env.append(samples.form_submission(
            samples.COMPLETE_FORM | {"Adresse e-mail": f"c{i}@example.org"}))
    env.append(samples.free_text(subject="Question sans rapport"))
    env.run()
    env.restart()
    env.run()  # the originals left behind (no UIDPLUS) are never handled again

    assert len(env.complaints()) == 7
    assert len(env.folder(PROCESSED)) == 7
    assert len(env.folder("INBOX")) == 1
    for i in range(7):
        assert len(env.smtp.handler.to(f"c{i}@example.org")) == 1
    left = deleted_originals(env)
    if "UIDPLUS" in env.server.layout.lacks:
        # Never a bare EXPUNGE: the originals stay, deleted and read, for the user's client.
        assert len(left) == 7
        assert all(b"\\Deleted" in flags and b"\\Seen" in flags for flags in left)
    else:
        assert left == []
    # The message left for humans is untouched: still unread, not deleted.
    assert all(b"\\Seen" not in flags for flags in env.flags("INBOX"))


@pytest.mark.mailbox
def test_a_level_containing_the_servers_delimiter_is_a_config_error(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(
        text + '\n[folders]\nprocessed = "Réclamations/Traitées.2026"\n', encoding="utf-8")
    env.restart()
    env.append(samples.form_submission())

    code = main(["--config", str(env.config_path), "run", "--once"])
    err = capsys.readouterr().err
    if env.server.layout.delimiter == ".":
        assert code == 2
        assert "folders.processed" in err and "« Traitées.2026 »" in err
        assert env.complaints() == [] and env.smtp.handler.received == []
        assert len(env.folder("INBOX")) == 1  # nothing lost: it waits for the fix
    else:
        # '/' servers take the name as it is, unless their storage refuses it (Dovecot's
        # Maildir++ keeps '.' for itself): then the acknowledgement still goes, the
        # message waits in the inbox, and check says which folder and why.
        assert code == 0, err
        assert len(env.smtp.handler.to(CLIENT)) == 1
        if env.folder("Réclamations/Traitées.2026"):
            return
        assert len(env.folder("INBOX")) == 1
        assert main(["--config", str(env.config_path), "check"]) == 1
        [failed] = [line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("FAIL")]
        assert "folders.processed" in failed and "cannot create" in failed


@pytest.mark.mailbox
def test_check_names_the_namespace_extensions_and_server_folders(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    layout = env.server.layout
    assert main(["--config", str(env.config_path), "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = {line.split()[1]: [] for line in out}
    for line in out:
        assert line.startswith("OK"), line
        lines[line.split()[1]].append(line)
    [namespace] = lines["namespace"]
    assert f"préfixe « {layout.prefix} »" in namespace
    assert f"séparateur « {layout.delimiter} »" in namespace
    assert ("par LIST" in namespace) == ("NAMESPACE" in layout.lacks)
    capabilities = {line.split()[2].rstrip(":"): line for line in lines["imap"]}
    assert set(capabilities) == {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "UTF8=ACCEPT",
                                 "SPECIAL-USE"}
    for name in ("IDLE", "MOVE", "UIDPLUS"):
        assert ("absent" in capabilities[name]) == (name in layout.lacks), capabilities[name]
    if "IDLE" in layout.lacks:
        assert "relève toutes les 60 s (poll_interval)" in capabilities["IDLE"]
    if "MOVE" in layout.lacks:
        fallback = "UID EXPUNGE" if "UIDPLUS" not in layout.lacks else "jamais d'EXPUNGE nu"
        assert fallback in capabilities["MOVE"]
    folder_lines = lines["folder"]
    assert len(folder_lines) == 3
    for key, name in (("processed", PROCESSED), ("ignored", IGNORED),
                      ("quarantine", QUARANTINE)):
        [line] = [x for x in folder_lines if f"folders.{key} " in x]
        assert f"dossier du serveur « {layout.folder(name)} » (créé)" in line
    # Created for real, once: a second check finds them.
    assert {layout.folder(n) for n in (PROCESSED, IGNORED, QUARANTINE)} <= set(
        server_folders(env))
    assert main(["--config", str(env.config_path), "check"]) == 0
    again = [line for line in capsys.readouterr().out.splitlines()
             if line.split()[1] == "folder"]
    assert all("(existant)" in line for line in again) and len(again) == 3
    # And OK means run works.
    env.append(samples.form_submission())
    env.run()
    assert len(env.folder(PROCESSED)) == 1 and len(env.complaints()) == 1


@pytest.mark.mailbox
def test_folders_created_earlier_under_the_unprefixed_spelling_are_used(env: BotEnv) -> None:
    """A folder created before by another client, under another spelling, is found."""
    layout = env.server.layout
    spellings = Namespace(layout.prefix, layout.delimiter).spellings(PROCESSED, "x")
    client = env.imap()
    try:
        # The last spelling the server accepts and that differs from the preferred one.
        created = None
        for name in reversed(spellings[1:]):
            try:
                client.create_folder(name)
            except Exception:  # this server refuses that spelling: nothing to find there
                continue
            created = name
            break
    finally:
        client.logout()
    env.append(samples.form_submission())
    env.run()
    folders = server_folders(env)
    if created is None:
        assert layout.folder(PROCESSED) in folders
        assert len(env.folder(PROCESSED)) == 1
        return
    assert layout.folder(PROCESSED) not in folders or layout.folder(PROCESSED) == created
    client = env.imap()
    try:
        client.select_folder(created, readonly=True)
        assert len(client.search()) == 1
    finally:
        client.logout()


# --- Filing that fails never holds back the outbox -------------------------------------------


def _block_folder(env: BotEnv, name: str) -> object:
    """Put a stray file where Dovecot keeps the folder, so that CREATE fails on the server."""
    assert isinstance(env.server, Dovecot)
    from imapclient.imap_utf7 import encode

    on_disk = "." + encode(env.server.layout.folder(name)).decode()
    path = env.server.maildir(env.user) / on_disk
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder")
    return path


def test_failed_folder_creation_still_sends_and_the_next_pass_files_once_dovecot(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    """Debian's Dovecot, whose CREATE fails (SERVERBUG) while a file sits in the way."""
    env.append(samples.free_text(subject="Bonjour"))  # makes the Maildir exist
    env.run()
    blocker = _block_folder(env, PROCESSED)
    env.append(samples.form_submission())

    assert main(["--config", str(env.config_path), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "1 message(s) traité(s) mais non classé(s)" in out
    # Registered and acknowledged, although the message could not be filed.
    [complaint] = env.complaints()
    assert len(env.smtp.handler.to(CLIENT)) == 1
    assert len(env.smtp.handler.to(DIRECTOR)) == 1
    assert len(env.folder("INBOX")) == 2
    [row] = env.query(Inbound, Inbound.action == "submission")
    assert row.state == "committed"

    for _ in range(2):  # two more failing passes: reported from the third
        env.restart()
        env.run()
    assert main(["--config", str(env.config_path), "status"]) == 0
    status = capsys.readouterr().out
    assert "Classement en échec" in status and "« Réclamations/Traitées » : 3 relève(s)" in status
    env.now = None
    from bot.procedure.jobs import remind, today

    remind(env.app, today(env.app))
    env.run()  # the digest goes out with the outbox of the next pass
    [digest] = [c for c in env.smtp.handler.to(DIRECTOR) if "point du" in c.subject]
    assert "« Réclamations/Traitées »" in digest.text()
    assert "ne parvient pas à classer" in digest.text()
    assert "ne parvient pas à classer" in digest.html()

    blocker.unlink()  # type: ignore[attr-defined]
    env.restart()
    env.run()
    assert len(env.folder(PROCESSED)) == 1
    assert len(env.folder("INBOX")) == 1  # the untagged one, for humans
    [row] = env.query(Inbound, Inbound.action == "submission")
    assert row.state == "done"
    assert len(env.smtp.handler.to(CLIENT)) == 1  # sent once, filed once
    assert len(env.complaints()) == 1 and complaint.number == env.complaints()[0].number
    assert main(["--config", str(env.config_path), "status"]) == 0
    assert "Classement en échec     aucun" in capsys.readouterr().out
    env.run()
    assert len(env.folder(PROCESSED)) == 1


# --- Quarantine you can act on --------------------------------------------------------------


@pytest.mark.mailbox
def test_quarantine_list_then_retry_after_a_fix_handles_each_once(
        env: BotEnv, capsys: pytest.CaptureFixture[str]) -> None:
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text + "\n[limits]\nmax_message_bytes = 5000\n", encoding="utf-8")
    env.restart()
    # Over the limit: quarantined, its sender told.
    env.append(samples.form_submission(
        attachments=[("facture.pdf", "application/pdf", samples.pdf_bytes(8000))]))
    env.append(samples.free_text(subject="Réclamation : attestation",
                                 sender="Paul <paul@example.org>"))
    env.run()
    assert [r.action for r in env.inbound()] == ["too_large", "new_contact"]
    [told] = env.smtp.handler.to(CLIENT)

    assert main(["--config", str(env.config_path), "quarantine", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-1].startswith("1 message(s) en quarantaine")
    uid = listing[0].split()[0]
    assert "max_message_bytes (5000)" in listing[0] and "no-reply@example.fr" in listing[0]

    assert main(["--config", str(env.config_path), "quarantine", "retry", "999999"]) == 2
    assert "not in quarantine: 999999" in capsys.readouterr().err

    env.config_path.write_text(text, encoding="utf-8")  # the fix: the default limits
    assert main(["--config", str(env.config_path), "quarantine", "retry", uid]) == 0
    out = capsys.readouterr().out
    assert "1 message(s) remis dans" in out and "submission: 1" in out
    env.restart()
    assert len(env.complaints()) == 1
    assert len(env.smtp.handler.to(CLIENT)) == 2  # the polite refusal, then the acknowledgement
    assert told.subject != env.smtp.handler.to(CLIENT)[1].subject
    assert env.folder(QUARANTINE) == []
    assert len(env.folder(PROCESSED)) == 2
    [event] = env.query(Event, Event.kind == "quarantine_retry")
    assert event.detail["uid"] == uid

    # Exactly once: nothing left to retry, and another pass changes nothing.
    assert main(["--config", str(env.config_path), "quarantine", "retry", "--all"]) == 0
    assert "rien en quarantaine" in capsys.readouterr().out
    env.run()
    assert len(env.complaints()) == 1 and len(env.smtp.handler.to(CLIENT)) == 2
    assert main(["--config", str(env.config_path), "status"]) == 0
    assert "Quarantaine             0" in capsys.readouterr().out


def test_filing_log_is_written_only_when_something_changes(env: BotEnv) -> None:
    """A pass whose filing works writes no failure record."""
    from bot.reporting.status import FILING_KEY
    from bot.store.models import Setting

    env.append(samples.form_submission())
    env.run()
    with env.app.sessions() as session:
        assert session.get(Setting, FILING_KEY) is None
    with env.app.transaction() as session:
        session.add(Setting(key=FILING_KEY, value=json.dumps(
            {PROCESSED: {"count": 2, "since": "2026-12-01T08:00:00"}})))
    env.append(samples.form_submission(samples.COMPLETE_FORM | {"Adresse e-mail": "b@x.org"}))
    env.run()  # filing into it works again: the failure is forgotten
    with env.app.sessions() as session:
        row = session.get(Setting, FILING_KEY)
        assert row is not None and json.loads(row.value) == {}


@pytest.mark.parametrize("imap_server", ["dovecot-nomove", "dovecot-minimal", "courier"],
                         indirect=True)
def test_a_crash_between_copy_and_removal_leaves_one_copy(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers without MOVE: killed after COPY, before the original is flagged."""
    from imapclient import IMAPClient

    env.append(samples.form_submission())
    env.append(samples.free_text(subject="Réclamation : accueil", sender="paul@example.org"))
    real = IMAPClient.add_flags

    def crash(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("killed after COPY")

    monkeypatch.setattr(IMAPClient, "add_flags", crash)
    with pytest.raises(KeyboardInterrupt):
        env.run()
    monkeypatch.setattr(IMAPClient, "add_flags", real)
    assert len(env.folder(PROCESSED)) == 2 and len(env.folder("INBOX")) == 2  # both places
    env.restart()
    env.run()
    env.run()
    assert len(env.folder(PROCESSED)) == 2  # no second copy
    assert env.folder("INBOX") == []
    assert len(env.complaints()) == 1 and len(env.contacts()) == 1
    assert len(env.smtp.handler.to(CLIENT)) == 1
    assert len(env.smtp.handler.to("paul@example.org")) == 1


@pytest.mark.mailbox
def test_a_watched_folder_other_than_inbox_is_mapped_too(env: BotEnv) -> None:
    """``[imap] folder = "Réclamations/Entrée"``, as a server rule filing sub-addressed mail."""
    layout = env.server.layout
    client = env.imap()
    try:
        client.create_folder(layout.folder("Réclamations/Entrée"))
    finally:
        client.logout()
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text.replace('password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"',
                                            'password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"\n'
                                            'folder = "Réclamations/Entrée"'), encoding="utf-8")
    env.restart()
    env.append(samples.form_submission(), folder="Réclamations/Entrée")
    env.append(samples.free_text())  # in INBOX: not the bot's
    env.run()
    assert len(env.complaints()) == 1
    assert env.folder("Réclamations/Entrée") == []
    assert len(env.folder(PROCESSED)) == 1
    assert len(env.folder("INBOX")) == 1 and env.contacts() == []
