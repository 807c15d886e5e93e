"""Any address (RFC 6531, 6532): accented local parts, IDN domains, in punycode or not,
decomposed accents. They register, normalised (NFC, the domain's Unicode form), and
are written to through the test SMTP server, with and without SMTPUTF8: the domain as
an A-label wherever that makes the address ASCII, the accented local part over SMTPUTF8
only, and a clear refusal, told to the director, where the server cannot carry it."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.outbound.addresses import deliverable
from bot.testing import samples
from tests.conftest import DIRECTOR, BotEnv
from tests.servers import ImapServer, SmtpServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def utf8_env(request: pytest.FixtureRequest, tmp_path: Path, imap_server: ImapServer,
             monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[BotEnv]:
    smtp = SmtpServer(enable_SMTPUTF8=request.param)
    bot_env = BotEnv(tmp_path, imap_server, smtp, monkeypatch, database_url)
    bot_env.smtputf8 = request.param  # type: ignore[attr-defined]
    try:
        yield bot_env
    finally:
        bot_env.close()
        smtp.stop()


def submit(env: BotEnv, address: str) -> str:
    env.append(samples.form_submission(dict(samples.COMPLETE_FORM, **{
        "Adresse e-mail": address})))
    env.run()
    [complaint] = env.complaints()
    return str(complaint.client_email)


@pytest.mark.parametrize(("typed", "stored", "envelope"), [
    ("jeanne@exémple.fr", "jeanne@exémple.fr", "jeanne@xn--exmple-cva.fr"),
    ("jeanne@xn--exmple-cva.fr", "jeanne@exémple.fr", "jeanne@xn--exmple-cva.fr"),
    ("Jeanne@EXÉMPLE.fr", "jeanne@exémple.fr", "jeanne@xn--exmple-cva.fr"),
])
def test_an_idn_domain_registers_and_is_written_to_as_its_a_label(
        utf8_env: BotEnv, typed: str, stored: str, envelope: str) -> None:
    assert submit(utf8_env, typed) == stored
    [acknowledgement] = [c for c in utf8_env.smtp.handler.received
                         if "Accusé" in c.subject]
    assert acknowledgement.recipients == [envelope]  # ASCII: any server carries it
    assert acknowledgement.message["To"] == envelope


@pytest.mark.parametrize("typed", ["josé@exemple.fr",
                                   unicodedata.normalize("NFD", "josé@exemple.fr")])
def test_an_accented_local_part_travels_over_smtputf8_or_is_refused_clearly(
        utf8_env: BotEnv, typed: str) -> None:
    assert submit(utf8_env, typed) == "josé@exemple.fr"  # NFC
    received = [c for c in utf8_env.smtp.handler.received if "Accusé" in c.subject]
    if utf8_env.smtputf8:  # type: ignore[attr-defined]
        [acknowledgement] = received
        assert acknowledgement.recipients == ["josé@exemple.fr"]
        assert acknowledgement.message["To"] == "josé@exemple.fr"
    else:
        assert received == []
        [row] = [o for o in utf8_env.outbox() if o.kind == "acknowledgement"]
        assert row.status == "failed" and "SMTPUTF8" in row.last_error
        assert "josé@exemple.fr" in row.last_error
        told = [c for c in utf8_env.smtp.handler.to(DIRECTOR)
                if "josé@exemple.fr" in c.text()]
        assert told, [c.subject for c in utf8_env.smtp.handler.to(DIRECTOR)]


def test_deliverable() -> None:
    assert deliverable("a@exemple.fr") == "a@exemple.fr"
    assert deliverable("a@exémple.fr") == "a@xn--exmple-cva.fr"
    assert deliverable("josé@exémple.fr") == "josé@xn--exmple-cva.fr"
