"""Property-based tests: whatever arrives, it ends filed or registered, never a crash.

These run the real pipeline on a local Maildir (the same code path as IMAP behind the
source interface), so that hypothesis can try hundreds of messages quickly.
"""

from __future__ import annotations

import email.header
import mailbox
import tempfile
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import load_config
from bot.intake.message import MessageError, parse_message
from bot.intake.sources.maildir import MaildirSource
from bot.ops.demo import DEMO_CONFIG
from bot.pipeline import process_mailbox
from bot.store.models import Inbound

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def app() -> App:
    directory = Path(tempfile.mkdtemp(prefix="reclambot-props-"))
    (directory / "config.toml").write_text(DEMO_CONFIG, encoding="utf-8")
    return build_app(load_config(directory / "config.toml"))


def run_one(raw: bytes) -> Inbound:
    application = app()
    assert application.config.maildir is not None
    source = MaildirSource(application.config.maildir.inbox)
    key = mailbox.Maildir(application.config.maildir.inbox, create=False).add(raw)
    process_mailbox(application, source, sink=None)
    with application.sessions() as session:
        row = session.scalar(select(Inbound).where(Inbound.uid == key))
    assert row is not None, "every message gets a row"
    assert row.state == "done"
    in_inbox = key in source.present([key])
    assert in_inbox == (row.folder == ""), (row.action, row.folder)
    return row


def norm(text: str) -> str:
    """Whitespace folded; NUL bytes dropped, as the parser drops them (they carry nothing);
    in Unicode's composed form (NFC), as the parser gives text (U+F900 comes back U+8C48)."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFC", text).replace("\x00", "").split())


@SETTINGS
@given(st.binary(max_size=4000))
def test_any_bytes_end_filed(raw: bytes) -> None:
    row = run_one(raw)
    assert row.action in {"quarantine", "leave", "robot", "new_contact", "duplicate",
                          "submission", "too_large"}


header_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@SETTINGS
@given(
    subject=header_text,
    name=header_text,
    body=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=500),
    charset=st.sampled_from(["utf-8", "iso-8859-1", "cp1252", None]),
    filename=header_text,
    encode_subject=st.booleans(),
)
def test_structured_messages_parse_and_stay_contained(
        subject: str, name: str, body: str, charset: str | None, filename: str,
        encode_subject: bool) -> None:
    declared = charset or "utf-8"
    try:
        encoded_body, exact = body.encode(declared), True
    except UnicodeEncodeError:
        encoded_body, exact = body.encode(declared, "replace"), False
    subject_header = (email.header.Header(subject, "utf-8").encode() if encode_subject
                      else subject.encode("utf-8", "replace").decode("latin-1"))
    ctype = f"text/plain; charset={charset}" if charset else "text/plain"
    raw = (
        f"From: {email.header.Header(name, 'utf-8').encode()} <someone@example.org>\r\n"
        f"Subject: Réclamation {subject_header}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n'
        f"--zz\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode("utf-8", "replace") + encoded_body + (
        f"\r\n--zz\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{email.utils.quote(filename)}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--zz--\r\n"
    ).encode("utf-8", "replace")
    try:
        msg = parse_message(raw)
    except MessageError:
        return
    assert "\r" not in msg.subject and "\n" not in msg.subject
    if exact and "--zz" not in body:
        # The text comes back as it was written, whatever its charset (declared or not).
        assert norm(body) in norm(msg.text)
    row = run_one(raw)
    root = app().config.dossiers.resolve()
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root)
    assert row.action != "quarantine" or row.error


@SETTINGS
@given(st.binary(max_size=200).filter(lambda b: b.isascii() and b"=?" not in b))
def test_plain_ascii_header_fields_decode_as_the_general_path_does(value: bytes) -> None:
    # decode_header_value skips RFC 2047 decoding for these: it must change nothing.
    from bot.intake.message import decode_header_value

    general = str(email.header.make_header(email.header.decode_header(value.decode("ascii"))))
    assert decode_header_value(value) == norm(general)
