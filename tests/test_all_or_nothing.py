"""A command email is one unit: a refusal at any line leaves nothing behind.

No outbox row, no dossier file, no event, no number consumed, in both ways a batch is
handled: straight through (rows held in the batch's buffer until its end) and replayed
with a SAVEPOINT per message. The in-memory mailbox and mail server: no server needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import pipeline
from bot.store.models import Complaint, Event, Outbox
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, MemoryEnv

CLIENT = "jeanne.martin@example.org"  # the sample form's address


@pytest.fixture(params=["straight", "replay"])
def env(request: pytest.FixtureRequest, memory: MemoryEnv,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryEnv]:
    """The in-memory bot, its batches handled straight through or replayed."""
    monkeypatch.setattr(pipeline, "STRAIGHT_THROUGH", request.param == "straight")
    yield memory


def registered(env: MemoryEnv) -> Complaint:
    env.deliver(samples.form_submission())
    [complaint] = env.query(Complaint)
    return complaint


def command(env: MemoryEnv, complaint: Complaint, body: str) -> None:
    subject = f"Re: {env.app.tokens.tag(complaint.number)} Nouvelle réclamation"
    env.deliver(samples._message(sender=DIRECTOR, to=BOT, subject=subject, text=body))


def to_client(env: MemoryEnv) -> list[str]:
    return [row.kind for row in env.query(Outbox, Outbox.to_address == CLIENT)]


def dossier_files(env: MemoryEnv, number: str) -> list[str]:
    folder = env.app.dossiers.folder(number)  # type: ignore[attr-defined]
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def last_director_subject(env: MemoryEnv) -> str:
    return env.sink.to(DIRECTOR)[-1].subject


def test_refused_command_email_sends_no_response(env: MemoryEnv) -> None:
    """#reponse, #cloturer, then #manquement refused (closed by then): the director is
    told nothing was recorded or sent, and nothing was: no response email, no dossier
    copy of one, no event, and REP-…-0001 is still the next number."""
    complaint = registered(env)
    events = len(env.query(Event))
    command(env, complaint, "#reponse positive\nVotre attestation vous a été envoyée.\n"
            "#cloturer\n#manquement Retard d'envoi de l'attestation\n")
    assert "Commande refusée" in last_director_subject(env)
    assert "est clôturée" in env.sink.to(DIRECTOR)[-1].text
    assert to_client(env) == ["acknowledgement"]
    assert [s.subject for s in env.sink.to(CLIENT) if "Réponse" in s.subject] == []
    assert not [name for name in dossier_files(env, complaint.number) if "response" in name]
    [after] = env.query(Complaint)
    assert after.status == "open" and after.response_number == "" and after.failures == []
    assert [e.kind for e in env.query(Event)][events:] == []
    command(env, complaint, "#reponse positive\nVotre attestation vous a été envoyée.\n")
    [answered] = env.query(Complaint)
    assert answered.response_number.endswith("-0001")
    assert to_client(env) == ["acknowledgement", "response"]


def test_refusal_on_the_last_of_five_commands(env: MemoryEnv) -> None:
    complaint = registered(env)
    command(env, complaint, "#manquement Attestation oubliée\n#action 2026-12-01 Renvoi\n"
            "#note appelée\n#reponse negative\nNous ne pouvons pas.\n#prolonger deux jours\n")
    assert "Commande refusée" in last_director_subject(env)
    assert "Ligne 6" in env.sink.to(DIRECTOR)[-1].text
    assert to_client(env) == ["acknowledgement"]
    [after] = env.query(Complaint)
    assert after.failures == [] and after.actions == [] and after.mediation_sent_at is None
    assert env.query(Event, Event.kind.in_(["note", "failure", "action", "response"])) == []


def test_negative_response_then_a_refused_reopen_sends_no_mediation(env: MemoryEnv) -> None:
    complaint = registered(env)
    command(env, complaint, "#reponse negative\nNous ne pouvons pas donner suite.\n#rouvrir\n")
    assert "Commande refusée" in last_director_subject(env)
    assert to_client(env) == ["acknowledgement"]


def test_requalify_then_a_refused_failure_sends_no_requalification(env: MemoryEnv) -> None:
    complaint = registered(env)
    command(env, complaint, "#requalifier Demande d'information\n#manquement Retard\n")
    assert "Commande refusée" in last_director_subject(env)
    assert to_client(env) == ["acknowledgement"]
    [after] = env.query(Complaint)
    assert after.status == "open"


def test_a_refusal_among_other_messages_of_the_batch_takes_only_its_own(
        env: MemoryEnv) -> None:
    """The emails other messages of the same batch queued before and after the refused
    command email all leave; only the refused one's are taken back."""
    complaint = registered(env)
    subject = f"Re: {env.app.tokens.tag(complaint.number)} Nouvelle réclamation"
    env.source.deliver(samples.free_text(sender="paul.durand@example.net"))
    env.source.deliver(samples._message(
        sender=DIRECTOR, to=BOT, subject=subject,
        text="#reponse positive\nC'est fait.\n#cloturer\n#note x\n#rouvrir\n#rouvrir\n"))
    env.deliver(samples.free_text(sender="marc.petit@example.net"))
    kinds = sorted(row.kind for row in env.query(Outbox))
    assert kinds.count("form_link") == 2
    assert "response" not in kinds
    assert "Commande refusée" in last_director_subject(env)


# --- the last guard on what leaves --------------------------------------------------


def test_guard_stops_a_reply_whose_quote_no_rule_recognises(env: MemoryEnv) -> None:
    """The notification pasted under the commands, with no introduction any rule knows:
    its summary, dossier path and help reach no complainant; the director is told which
    lines look quoted."""
    complaint = registered(env)
    notification = env.sink.to(DIRECTOR)[-1].text
    command(env, complaint, "#reponse positive\nVotre attestation est partie ce jour.\n\n"
            + notification)
    answer = env.sink.to(DIRECTOR)[-1]
    assert "Commande refusée" in answer.subject
    assert "semblent venir de la notification citée" in answer.text
    assert "Numéro ......" in answer.text  # the line named, to find it
    assert to_client(env) == ["acknowledgement"]
    [after] = env.query(Complaint)
    assert after.response_text == "" and after.status == "open"


@pytest.mark.parametrize("line", [
    "Merci de répondre sur [REC-2026-0001/ABCDEFGHJKLMNPQR] directement.",
    "voir mailto:reclamations@example.fr?subject=Re%3A%20%5BREC-2026-0001%2FABCDEFGHJKLMNPQR%5D",
    "Pièces du dossier ................. dossiers/REC-2026-0001/",
    "Les pièces sont dans dossiers/REC-2026-0001/pieces-jointes",
    "X-Reclambot: REC-2026-0001",
    "Message automatique de reclambot pour SophroAttitude.",
    "  #manquement <texte>                 manquement de notre part (plusieurs possibles)",
])
def test_guard_refuses_each_internal_mark(env: MemoryEnv, line: str) -> None:
    complaint = registered(env)
    command(env, complaint, f"#reponse negative\nNous ne pouvons pas.\n{line}\n")
    assert "Commande refusée" in last_director_subject(env)
    assert to_client(env) == ["acknowledgement"]


def test_guard_lets_her_own_words_through(env: MemoryEnv) -> None:
    """What a director writes to a complainant: the complaint's number, a date, a price
    with dots, an address of the organisation."""
    complaint = registered(env)
    command(env, complaint, f"#reponse positive\nVotre réclamation {complaint.number} est "
            "close. Remboursement de 120.00 EUR le 12/12/2026.\nContact : "
            "reclamations@example.fr\n")
    assert "Commandes enregistrées" in last_director_subject(env)
    assert to_client(env) == ["acknowledgement", "response"]
