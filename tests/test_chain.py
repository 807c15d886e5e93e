"""The classifier's chain, rule by rule, on bare messages: no IMAP or SMTP server.

Each rule of the chain has its case here: a message (and the register it meets) on
which it matches and decides as the table says. The robot rules have theirs in
``test_robots.py``. A meta-test fails when a rule is added to the chain without one.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Callable

import pytest
from sqlalchemy import update

from bot.core.protocol import OWN_HEADER
from bot.core.states import Action
from bot.intake.classify import Decision, chains, classify
from bot.intake.classify.robots import ROBOT_RULES
from bot.intake.message import parse_message
from bot.store.models import Complaint, Event, Inbound, Outbox
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, STAFF, MemoryEnv

CLIENT = "jeanne.martin@example.org"  # the sample form's address

STRANGER = "paul.durand@example.net"


def decide(env: MemoryEnv, raw: bytes, over_limit: str | None = None) -> Decision:
    with env.app.transaction() as session:
        return classify(session, parse_message(raw), env.app, over_limit)


def director(subject: str, body: str, **kwargs: object) -> bytes:
    return samples._message(sender=DIRECTOR, to=BOT, subject=subject, text=body,
                            **kwargs)  # type: ignore[arg-type]


def registered(env: MemoryEnv) -> Complaint:
    """A complaint entered in the register from the website's form."""
    env.deliver(samples.form_submission())
    [complaint] = env.query(Complaint)
    return complaint


def sent(env: MemoryEnv, kind: str) -> bytes:
    [row] = env.query(Outbox, Outbox.kind == kind)
    return bytes(row.raw)


def tag(env: MemoryEnv, complaint: Complaint) -> str:
    return env.app.tokens.tag(complaint.number)


def first_contact(env: MemoryEnv) -> bytes:
    """A free-text complaint answered with the form link; the form-link email."""
    env.deliver(samples.free_text(sender=CLIENT))
    return sent(env, "form_link")


# Each case: (the message, given the register) -> what the chain must decide.
Case = Callable[[MemoryEnv], tuple[bytes, Action, str | None]]


def own_message(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.free_text(headers={OWN_HEADER: "REC-2026-0001"})
    return raw, Action.ROBOT, None


def from_form(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.form_submission(), Action.SUBMISSION, None


def size_limit(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.free_text(), Action.TOO_LARGE, "message de 99 octets, au-delà"


def quotes_own_email(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    body = ("Bonjour,\n\n> Message-ID: <0123456789abcdef0123456789abcdef.reclambot@example.fr>"
            "\n> Votre réclamation est enregistrée.\n")
    return samples.free_text(sender=STRANGER, body=body), Action.ROBOT, None


def bounce(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.delivery_report(first_contact(env), CLIENT), Action.BOUNCE, None


def delay_report(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    report = samples.delivery_report(first_contact(env), CLIENT, permanent=False)
    return report, Action.ROBOT, None


def from_director(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return director("Point de la semaine", "Bonjour,\n\nÀ lundi.\n"), Action.DIRECTOR, None


def command_tag(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return director("Re: [REC-2026-0001/AAAAAAAAAAAAAAAA]", "#note x\n"), Action.ALERT, None


def invalid_token(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    complaint = registered(env)
    subject = f"Re: [{complaint.number}/AAAAAAAAAAAAAAAA]"
    return director(subject, "#cloturer\n"), Action.ALERT, None


def valid_token(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    complaint = registered(env)
    return director(f"Re: {tag(env, complaint)}", "#note appelée ce matin\n"), Action.COMMAND, None


def commands_without_token(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return director("Clôture", "#cloturer\n"), Action.ALERT, None


def read_only_commands(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return director("Aide", "#aide\n"), Action.COMMAND, None


def foreign_token(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    complaint = registered(env)
    raw = samples.free_text(sender=CLIENT, subject=f"Re: {tag(env, complaint)}",
                            body="#cloturer\n")
    return raw, Action.ALERT, None


def thread_found(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    registered(env)
    raw = samples.reply(sent(env, "acknowledgement"), "Merci.", sender=CLIENT)
    return raw, Action.COMPLAINT_REPLY, None


def complaint_thread(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return thread_found(env)


def authentication(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    """The organisation asks for Authentication-Results, and the command email has none."""
    config = env.app.config
    env.app.config = dataclasses.replace(config, security=dataclasses.replace(
        config.security, require_authentication_results=True))
    return director("Aide", "#aide\n"), Action.ALERT, None


def stranger_to_thread(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    complaint = registered(env)
    raw = samples.free_text(sender=STRANGER, subject=f"RÉCLAMATION {complaint.number}")
    return raw, Action.NEW_CONTACT, None


def ticket_thread(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    incomplete = {**samples.COMPLETE_FORM, "Description": ""}
    env.deliver(samples.form_submission(incomplete))
    raw = samples.reply(sent(env, "information_request"),
                        "Description : Mon attestation n'est jamais arrivée.", sender=CLIENT)
    return raw, Action.TICKET_REPLY, None


def contact_thread(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.reply(first_contact(env), "Je vous rappelle demain.", sender=CLIENT)
    return raw, Action.CONTACT_REPLY, None


def filled_form_in_reply(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.reply(first_contact(env), samples.form_text(samples.COMPLETE_FORM),
                        sender=CLIENT)
    return raw, Action.SUBMISSION, None


def satisfaction_rating(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    complaint = registered(env)
    with env.app.transaction() as session:
        session.execute(update(Complaint).values(satisfaction_asked_at=complaint.received_at))
    raw = samples.reply(sent(env, "acknowledgement"), "Je mets 4/5.", sender=CLIENT)
    return raw, Action.COMPLAINT_REPLY, None


def subject_tag(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.free_text(sender=CLIENT), Action.NEW_CONTACT, None


def filled_form(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.free_text(sender=CLIENT, body=samples.form_text(samples.COMPLETE_FORM))
    return raw, Action.SUBMISSION, None


def form_fields(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return from_form(env)


def no_tag(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.free_text(sender=CLIENT, subject="Question"), Action.LEAVE, None


def no_command(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return from_director(env)


def staff_forward(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return samples.staff_forward(), Action.FORWARD, None


def _transmit(line: str, attachments: list[tuple[str, str, bytes]] | None = None) -> bytes:
    return samples._message(sender=STAFF, to=BOT, subject="Courrier reçu à l'accueil",
                            text=f"{line}\nLettre remise ce matin.\n", attachments=attachments)


def transmitted_letter(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = _transmit("#transmettre lea.martin@example.org 2026-12-01",
                    [("courrier.pdf", "application/pdf", samples.pdf_bytes())])
    return raw, Action.FORWARD, None


def letter_refused(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return _transmit("#transmettre lea.martin@example.org 2026-12-01"), Action.FORWARD_REFUSED, None


def unreadable_original(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    return _transmit("#transmettre"), Action.FORWARD_REFUSED, None


def original_not_a_person(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.staff_forward(original=f"Claire Durand <{DIRECTOR}>")
    return raw, Action.FORWARD_REFUSED, None


def original_from_robot(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    raw = samples.staff_forward(original="Mail Delivery System <mailer-daemon@example.org>")
    return raw, Action.FORWARD_REFUSED, None


def known_original(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    env.deliver(samples.staff_forward())
    return samples.staff_forward(note="Elle a rappelé."), Action.FORWARD, None


def forwarded_form(env: MemoryEnv) -> tuple[bytes, Action, str | None]:
    form = {**samples.COMPLETE_FORM, "Adresse e-mail": "lea.martin@example.org"}
    return samples.staff_forward(body=samples.form_text(form)), Action.FORWARD, None


CASES: dict[str, Case] = {case.__name__: case for case in (
    own_message, from_form, size_limit, quotes_own_email, bounce, delay_report, from_director,
    command_tag, invalid_token, valid_token, commands_without_token, read_only_commands,
    foreign_token, thread_found, complaint_thread, stranger_to_thread, ticket_thread,
    contact_thread, filled_form_in_reply, satisfaction_rating, subject_tag, filled_form,
    form_fields, no_tag, no_command, authentication, staff_forward, transmitted_letter,
    letter_refused, unreadable_original, original_not_a_person, original_from_robot,
    known_original, forwarded_form)}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_of_the_chain_decides_as_the_table_says(memory: MemoryEnv, rule: str) -> None:
    raw, action, over_limit = CASES[rule](memory)
    decision = decide(memory, raw, over_limit)
    names = [m.rule for m in decision.matches]
    assert rule in names, (decision.action, decision.matches)
    assert decision.action == action, (decision.action, decision.matches)
    assert rule not in decision.passed


def test_every_rule_of_the_chain_has_its_case() -> None:
    """A rule added to the chain needs its case above (robots: in test_robots.py)."""
    from bot.config import package_data_dir
    from bot.rulebook import load_rulebook

    rulebook = load_rulebook(package_data_dir("rules"))
    robots = {rule.__name__ for rule in ROBOT_RULES} | {
        rule.name for rule in rulebook.robots.subject_rules}
    table = chains(rulebook)
    names = {link.rule_name for chain in table.values() for link in chain.links}
    names |= {chain.otherwise.rule for chain in table.values()
              if getattr(chain.otherwise, "rule", "")}
    assert names - robots - set(CASES) == set()


def test_the_row_records_the_rules_that_did_not_match(memory: MemoryEnv) -> None:
    memory.deliver(samples.free_text(sender=CLIENT))
    [row] = memory.query(Inbound)
    assert [m["rule"] for m in row.rules] == ["subject_tag"]
    assert {"own_message", "from_form", "auto_submitted", "from_director", "thread_found",
            "filled_form"} <= set(row.rules_passed)
    assert "subject_tag" not in row.rules_passed


def test_a_reply_bringing_the_form_is_decided_a_submission_and_registered(
        memory: MemoryEnv) -> None:
    """The decision says what the handler did: a submission following its first contact."""
    from bot.store.models import Contact

    link = first_contact(memory)
    memory.deliver(samples.reply(link, samples.form_text(samples.COMPLETE_FORM), sender=CLIENT))
    row = memory.query(Inbound)[-1]
    assert row.action == Action.SUBMISSION
    assert row.rules[0]["rule"] == "filled_form_in_reply"
    [contact] = memory.query(Contact)
    [complaint] = memory.query(Complaint)
    assert row.contact_id == contact.id and row.complaint_id == complaint.id
    assert complaint.initial_reference == contact.reference
    acknowledgement = memory.sink.to(CLIENT)[-1]
    assert complaint.number in acknowledgement.subject


def test_director_commands_are_parsed_once_and_carried(memory: MemoryEnv) -> None:
    complaint = registered(memory)
    decision = decide(memory, director(f"Re: {tag(memory, complaint)}",
                                       "#note appelée\n#inconnue\n"))
    assert decision.action == Action.COMMAND
    assert decision.commands == () and decision.command_error is not None
    assert "ligne 2" in str(decision.command_error)
    # The handler reports the error the decision carries, and runs nothing.
    memory.deliver(director(f"Re: {tag(memory, complaint)}", "#note appelée\n#inconnue\n"))
    [row] = memory.query(Outbox, Outbox.kind == "director_error")
    parsed = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Ligne 2" in text and "#inconnue" in text
    assert memory.query(Event, Event.kind == "note") == []


def test_every_action_the_chains_can_decide_has_its_route() -> None:
    """One table from each action to its handler and folder (procedure.handlers.ROUTES)."""
    from bot.config import package_data_dir
    from bot.intake.classify.chain import Decide
    from bot.procedure.handlers import ROUTES
    from bot.rulebook import load_rulebook

    table = chains(load_rulebook(package_data_dir("rules")))
    outcomes = [link.outcome for chain in table.values() for link in chain.links]
    outcomes += [chain.otherwise for chain in table.values()]
    actions = {o.action if isinstance(o, Decide) else o for o in outcomes
               if isinstance(o, Action | Decide)}
    assert actions == set(ROUTES)
    assert set(Action) - set(ROUTES) == {Action.QUARANTINE, Action.DUPLICATE, Action.RESUMED}
