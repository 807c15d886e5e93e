"""The corpus of ``tests/data/corpus``: robots' mail never answered, people's always.

``robots/`` holds delivery reports of many MTAs, gateways, antivirus and content
filters, list servers, out-of-office replies, read receipts, feedback loops and
challenge-response requests; ``people/`` holds genuine complaints that look like them
(their subjects, a delivery error quoted or forwarded, an email forwarded as an
attachment, odd encodings). Every message carries the complaint tag, so without the
robot rules each would get the form link. They go through the real Dovecot together,
and each one's fate is asserted (the report names every file that went wrong).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.store.models import Outbox
from tests.conftest import BotEnv

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parent / "data" / "corpus"
ROBOTS = sorted((CORPUS / "robots").glob("*.eml"))
PEOPLE = sorted((CORPUS / "people").glob("*.eml"))


def _header(raw: bytes, name: str) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default)[name] or "")


def _sender(raw: bytes) -> str:
    return email.utils.parseaddr(_header(raw, "From"))[1].lower()


def deliver_all(env: BotEnv, files: list[Path]) -> dict[str, Path]:
    """Append every file to the INBOX and run the bot until it is empty; Message-ID -> file."""
    by_id = {}
    for path in files:
        raw = path.read_bytes()
        by_id[_header(raw, "Message-ID").strip()] = path
        env.append(raw)
    for _ in range(len(files)):
        env.run()
        if not env.folder("INBOX"):
            break
    assert env.folder("INBOX") == []
    return by_id


def misjudged(env: BotEnv, by_id: dict[str, Path], right: Callable[[Any, str], bool]
              ) -> list[str]:
    """The files whose row is missing, or whose row and sender ``right`` rejects."""
    rows = {row.message_id: row for row in env.inbound()}
    wrong = []
    for message_id, path in by_id.items():
        row = rows.get(message_id)
        if row is None:
            wrong.append(f"{path.name}: not handled")
        elif not right(row, _sender(path.read_bytes())):
            wrong.append(f"{path.name}: {row.action}, rules {row.rules}")
    return wrong


def test_corpus_is_large_enough() -> None:
    assert len(ROBOTS) >= 60 and len(PEOPLE) >= 60


def test_no_robot_of_the_corpus_is_answered(env: BotEnv) -> None:
    by_id = deliver_all(env, ROBOTS)
    answered = {row.to_address for row in env.outbox()}
    wrong = misjudged(env, by_id, lambda row, sender: row.action in ("robot", "bounce")
                      and sender not in answered)
    assert not wrong, "\n".join(wrong)
    assert env.contacts() == [] and env.complaints() == [] and env.outbox() == []


def test_every_person_of_the_corpus_gets_the_form_link(env: BotEnv) -> None:
    by_id = deliver_all(env, PEOPLE)
    links = {row.to_address for row in env.query(Outbox, Outbox.kind == "form_link")}
    wrong = misjudged(env, by_id, lambda row, sender: row.action == "new_contact"
                      and sender in links)
    assert not wrong, "\n".join(wrong)
    assert len(env.contacts()) == len(PEOPLE)
