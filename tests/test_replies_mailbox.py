"""The director's reply from each mail client, end to end: a real notification, her reply
shaped as her client sends it (``tests/data/replies``), Dovecot and the test SMTP server.

The complainant's email holds her text exactly (accents, non-breaking spaces, « », the
line breaks she meant) and nothing of the quoted notification; the register changes in
the commanded columns only.
"""

from __future__ import annotations

import email.header
import re
from pathlib import Path

import pytest
from markupsafe import escape

from bot.core.text import reflow
from bot.intake.commandline import parse
from bot.store.models import Event
from tests.conftest import DIRECTOR, BotEnv
from tests.servers import Captured
from tests.test_director import CLIENT, register
from tests.test_replies import FIXTURES, expected, index

pytestmark = pytest.mark.integration

ENTRIES = index()
DIRECTORS = [p for p in FIXTURES if ENTRIES.get(p.name, {}).get("kind") == "director"]
#: What only the notification carries: none of it may reach the complainant.
NOTIFICATION_ONLY = ("Nouvelle réclamation conforme", "Pièces du dossier", "#manquement",
                     "Commandes :", "Message automatique de reclambot", "............")


def retarget(raw: bytes, subject: str) -> bytes:
    """The fixture's reply with the subject of this register's notification (its key is
    this register's own), the rest of its bytes as the client wrote them."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = raw.partition(b"\n\n")
    newline = b"\r\n" if separator == b"\r\n\r\n" else b"\n"
    lines = head.split(newline)
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"subject:")
        if not skipping:
            kept.append(line)
    encoded = subject if subject.isascii() else email.header.Header(subject, "utf-8").encode()
    kept.append(b"Subject: " + encoded.encode("ascii"))
    return newline.join(kept) + separator + body


def response_to_client(env: BotEnv, before: int) -> Captured | None:
    new = env.smtp.handler.to(CLIENT)[before:]
    found = [c for c in new if "Réponse à votre réclamation" in c.subject]
    return found[-1] if found else None


@pytest.mark.parametrize("path", DIRECTORS, ids=lambda p: p.stem)
def test_reply_from_each_client_is_applied_as_she_wrote_it(env: BotEnv, path: Path) -> None:
    notification = register(env)
    [complaint] = env.complaints()
    before = len(env.smtp.handler.to(CLIENT))
    events = len(env.query(Event))
    env.append(retarget(path.read_bytes(), f"RE: {notification.subject}"))
    env.run()
    answers = [c for c in env.smtp.handler.to(DIRECTOR) if "Commande" in c.subject]
    assert answers and "Commandes enregistrées" in answers[-1].subject, answers[-1].text()
    commands = {c.name: c for c in parse(expected(path), env.app.rulebook.commands.words)}
    [after] = env.complaints()
    response = response_to_client(env, before)
    if "reponse" in commands:
        answer = commands["reponse"]
        rest = answer.args.partition(" ")[2].strip()
        meant = reflow("\n".join(part for part in (rest, answer.body) if part))
        assert response is not None
        assert after.response_text == meant
        # As sent: her words (the text() and html() of a capture read non-breaking
        # spaces as spaces, hers and the typography's alike).
        seen = meant.replace("\u00a0", " ")
        assert seen in response.text()
        assert str(escape(seen)) in response.html()
        for mark in NOTIFICATION_ONLY:
            assert mark not in response.text() and mark not in response.html()
        assert env.app.tokens.token(complaint.number) not in response.data.decode("ascii")
        assert after.response_number.endswith("-0001")
    else:
        assert response is None and after.response_number == ""
    if "cloturer" in commands:
        assert after.status == "closed"
    if "manquement" in commands:
        assert [f.text for f in after.failures] == [
            c.text for c in parse(expected(path), env.app.rulebook.commands.words)
            if c.name == "manquement"]
    else:
        assert after.failures == []
    # Nothing else moved: the complainant's own columns are as registered.
    assert (after.client_name, after.client_email, after.description) == (
        complaint.client_name, complaint.client_email, complaint.description)
    kinds = [e.kind for e in env.query(Event)][events:]
    assert "correspondence" not in kinds


def test_retarget_keeps_every_other_byte() -> None:
    raw = b"From: a@b\r\nSubject: =?utf-8?q?R=C3=A9?=\r\n x\r\nTo: c@d\r\n\r\nbody\r\n"
    assert retarget(raw, "Re: [REC]") == (b"From: a@b\r\nTo: c@d\r\nSubject: Re: [REC]\r\n"
                                          b"\r\nbody\r\n")
    assert re.search(rb"Subject: =\?utf-8\?", retarget(raw, "Réf"))


#: Three clients whose responses are opened in Chromium (one Word HTML, one HTML-only,
#: one flowed text).
LOOKED_AT = ("outlook-desktop-fr", "samsung", "thunderbird")


def test_the_response_reads_well_at_a_phones_width(env: BotEnv, tmp_path: Path) -> None:
    """The response written from three clients, opened at 375 and 800 px: no sideways
    scrolling, the same words as the text version (screenshots in ``screens/``)."""
    from tests.test_emails import look_at

    chosen = [next(p for p in DIRECTORS if p.stem.startswith(prefix)
                   and "reponse" in expected(p)) for prefix in LOOKED_AT]
    responses = []
    for path in chosen:
        notification = register(env)
        before = len(env.smtp.handler.to(CLIENT))
        env.append(retarget(path.read_bytes(), f"RE: {notification.subject}"))
        env.run()
        response = response_to_client(env, before)
        assert response is not None, path.name
        responses.append((path.stem, response.message))
    assert look_at(responses, tmp_path / "screens") == []


def _reply_to(raw: bytes, sent: Captured) -> bytes:
    """The fixture's reply made an answer to ``sent``: its subject and In-Reply-To."""
    message_id = str(sent.message["Message-ID"])
    raw = retarget(raw, f"Re: {sent.subject}")
    return re.sub(rb"(?im)^In-Reply-To:.*$", b"In-Reply-To: " + message_id.encode(), raw,
                  count=1)


@pytest.mark.parametrize("name", ["complainant-gmail-android-006-complement",
                                  "complainant-iphone-006-complement"])
def test_a_complainant_completes_her_ticket_from_her_phone(env: BotEnv, name: str) -> None:
    """The fields she adds are read from her new text only: the quoted information request
    (its list of missing fields, its labels) fills nothing in."""
    from bot.testing import samples

    fields = dict(samples.COMPLETE_FORM, **{
        "Nom et prénom": "Paul Bernard", "Adresse e-mail": "paul.bernard@example.com",
        "Description": "", "Consentement RGPD": ""})
    env.append(samples.form_submission(fields))
    env.run()
    [request] = [c for c in env.smtp.handler.to("paul.bernard@example.com")
                 if "incomplète" in c.subject]
    path = Path(__file__).parent / "data" / "replies" / f"{name}.eml"
    env.append(_reply_to(path.read_bytes(), request))
    env.run()
    assert env.inbound()[-1].action == "ticket_reply"
    [complaint] = env.complaints()
    typed = dict(line.split(" : ", 1) for line in expected(path).splitlines() if " : " in line)
    assert complaint.description == typed["Description"]
    assert complaint.client_email == "paul.bernard@example.com"


def test_a_satisfaction_rating_from_a_phone_is_read_from_her_new_text(env: BotEnv) -> None:
    """«Je suis satisfaite, 4/5» above the quoted question (whose «1 à 5» scale and
    «pas satisfait» would otherwise be read): the rating is hers; the director reads
    her words only."""
    from sqlalchemy import update

    from bot.store.models import Complaint

    register(env)
    [complaint] = env.complaints()
    with env.app.transaction() as session:
        session.execute(update(Complaint).values(satisfaction_asked_at=complaint.received_at))
    [acknowledgement] = [c for c in env.smtp.handler.to(CLIENT) if "Accusé" in c.subject]
    path = Path(__file__).parent / "data" / "replies" / "complainant-iphone-satisfaction.eml"
    raw = retarget(path.read_bytes(), f"Re: Réclamation {complaint.number} : êtes-vous "
                   "satisfait(e) de son traitement ?")
    env.append(_reply_to(raw, acknowledgement))
    env.run()
    [after] = env.complaints()
    assert after.satisfaction == "4"
    [forwarded] = [c for c in env.smtp.handler.to(DIRECTOR)
                   if "Nouveau message du réclamant" in c.subject]
    assert expected(path).splitlines()[0] in forwarded.text()
    assert "êtes-vous satisfait" not in forwarded.text()
