"""Through a real MTA: the bot sends through Debian's Postfix, which delivers the
organisation's mail into the test Dovecot and writes its own delivery reports; remote
MTAs' reports come back the same way. No report is ever answered; each one about our
email is tied to it, and the director hears of it once."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.models import Outbox
from bot.testing import samples
from tests import mta_reports
from tests.conftest import FORM_SENDER, BotEnv, ServerPool
from tests.servers import (
    DEFAULT_LAYOUT,
    POSTFIX_PLAIN_BOUNCE,
    POSTFIX_REMOTE_DOMAIN,
    Dovecot,
    Postfix,
    start_postfix,
)

pytestmark = pytest.mark.integration
IGNORED = "Réclamations/Ignorées"


@pytest.fixture(scope="session")
def postfix(imap_servers: ServerPool) -> Iterator[Postfix]:
    dovecot = imap_servers.get(DEFAULT_LAYOUT)
    assert isinstance(dovecot, Dovecot)
    server = start_postfix(dovecot)
    yield server
    server.stop()


class MtaEnv(BotEnv):
    """A bot whose SMTP server is Postfix, its address and its director's at Postfix's
    domain, so that what Postfix delivers to them lands in their Dovecot mailboxes."""

    def __init__(self, directory: Path, dovecot: Dovecot, postfix: Postfix,
                 monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
        super().__init__(directory, dovecot, postfix, monkeypatch,  # type: ignore[arg-type]
                         database_url)
        self.postfix = postfix
        self.address = f"{self.user}@{postfix.domain}"
        self.director_user = f"{self.user}-direction"
        self.director = f"{self.director_user}@{postfix.domain}"
        self.complainant = f"{self.user}@{POSTFIX_REMOTE_DOMAIN}"
        text = self.config_path.read_text(encoding="utf-8")
        text = text.replace('"reclamations@example.fr"', f'"{self.address}"')
        text = text.replace('"direction@example.fr"', f'"{self.director}"')
        self.config_path.write_text(text, encoding="utf-8")

    def deliver(self, raw: bytes, *, sender: str) -> None:
        """Hand ``raw`` to Postfix on SMTP, addressed to the bot, as the world does."""
        with smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=30) as client:
            client.sendmail(sender, [self.address], raw)

    def wait_for(self, user: str, count: int, timeout: float = 30.0) -> list[bytes]:
        """The messages in ``user``'s INBOX, once there are ``count`` of them (or the
        timeout has passed: the caller's assertion then shows what arrived)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.mailbox(user)
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            time.sleep(0.1)

    def mailbox(self, user: str) -> list[bytes]:
        folder = self.server.maildir(user)  # type: ignore[union-attr]
        return [path.read_bytes() for sub in ("new", "cur") if (folder / sub).exists()
                for path in sorted((folder / sub).iterdir())]

    def remote_received(self) -> list[bytes]:
        """What the remote MX accepted for this test's complainant."""
        return [c.data for c in self.postfix.remote.handler.received
                if self.complainant in c.recipients]


@pytest.fixture()
def mta(tmp_path: Path, imap_servers: ServerPool, postfix: Postfix,
        monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[MtaEnv]:
    dovecot = imap_servers.get(DEFAULT_LAYOUT)
    assert isinstance(dovecot, Dovecot)
    bot_env = MtaEnv(tmp_path, dovecot, postfix, monkeypatch, database_url)
    yield bot_env
    bot_env.close()
    postfix.remote.handler.refuse.pop(bot_env.complainant, None)


def submit(mta: MtaEnv) -> None:
    """The website's form sends a complaint whose e-mail address is the complainant's."""
    fields = dict(samples.COMPLETE_FORM, **{"Adresse e-mail": mta.complainant})
    mta.deliver(samples.form_submission(fields, to=mta.address), sender=FORM_SENDER)
    mta.wait_for(mta.user, 1)


def assert_tied_and_told_once(mta: MtaEnv, reports: int) -> None:
    """After ``reports`` reports about the acknowledgement: it is marked bounced, the
    complaint unreachable, the director told once, and nobody else written to."""
    [complaint] = mta.complaints()
    assert complaint.unreachable_at is not None
    [ack] = mta.query(Outbox, Outbox.kind == "acknowledgement")
    assert ack.bounced_at is not None
    rows = mta.inbound()[-reports:]
    assert [r.action for r in rows] == ["bounce"] * reports, [r.rules for r in rows]
    sent = [(row.kind, row.to_address) for row in mta.outbox()]
    assert sent == [("acknowledgement", mta.complainant), ("director_new_complaint",
                                                           mta.director),
                    ("director_unreachable", mta.director)], sent
    director = mta.wait_for(mta.director_user, 2)
    subjects = [_subject(raw) for raw in director]
    assert len(subjects) == 2 and sum("n'a pas pu être joint" in s for s in subjects) == 1, \
        subjects
    assert mta.mailbox(mta.user) == [] and len(mta.folder(IGNORED)) == reports


def _subject(raw: bytes) -> str:
    import email
    import email.policy

    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])


@pytest.mark.parametrize("templates", ["postfix", "plain-from"])
def test_postfix_report_of_an_unknown_address_is_tied_and_never_answered(
        mta: MtaEnv, templates: str) -> None:
    """The remote MX refuses the complainant: Postfix writes a real DSN to the bot, with
    its own templates or with a provider's (ordinary From, a subject saying nothing)."""
    mta.postfix.set_bounce_templates(POSTFIX_PLAIN_BOUNCE if templates == "plain-from" else "")
    try:
        mta.postfix.remote.handler.refuse[mta.complainant] = (
            f"550 5.1.1 <{mta.complainant}>: Recipient address rejected: User unknown")
        submit(mta)
        mta.run()  # registers the ticket, sends the acknowledgement through Postfix
        [report] = mta.wait_for(mta.user, 1)  # the form's email was filed
    finally:
        mta.postfix.set_bounce_templates("")
    if templates == "plain-from":
        assert b"From: Service messagerie <messagerie@" in report
    assert b"Content-Type: multipart/report" in report
    assert b"Return-Path: <MAILER-DAEMON>" in report  # how Dovecot's LDA writes <>
    # A second report about the same email, from a relay further on (a copy of Postfix's
    # own would be refused: its Delivered-To makes it a loop, as it should).
    [ack] = mta.query(Outbox, Outbox.kind == "acknowledgement")
    second = mta_reports.exim(ack.raw, mta.complainant, mta.address)
    mta.deliver(mta_reports.as_bytes(second), sender="")
    mta.wait_for(mta.user, 2)
    mta.run()
    assert_tied_and_told_once(mta, reports=2)
    rules = {m["rule"] for m in mta.inbound()[-2].rules}  # Postfix's report
    assert {"bounce", "report_structure", "return_path"} <= rules, rules
    if templates == "plain-from":  # caught by its structure and its envelope alone
        assert rules.isdisjoint({"robot_sender", "delivery_failure_subject"}), rules
    assert mta.remote_received() == []


@pytest.mark.parametrize("mta_name", sorted(mta_reports.FORMATS))
def test_remote_mta_report_is_tied_and_never_answered(mta: MtaEnv, mta_name: str) -> None:
    """The remote MX takes the acknowledgement, then its MTA reports the failure in its
    own format; the report travels back through Postfix."""
    submit(mta)
    mta.run()
    deadline = time.monotonic() + 30
    while not mta.remote_received() and time.monotonic() < deadline:
        time.sleep(0.1)
    [ack] = mta.remote_received()
    report = mta_reports.FORMATS[mta_name](ack, mta.complainant, mta.address)
    mta.deliver(mta_reports.as_bytes(report), sender="")
    mta.wait_for(mta.user, 1)
    mta.run()
    assert_tied_and_told_once(mta, reports=1)
    assert mta.remote_received() == [ack]  # nothing more written to the remote domain
