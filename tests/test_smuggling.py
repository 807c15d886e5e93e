"""Fields cannot carry other fields: what is registered is what was validated.

The attacks of the issue, each its own test: a description holding a first contact's
reference line, a name holding a line separator then another address, an innocent line
that reads as a label. Through ``reclambot serve`` over HTTP (Starlette's client) and
through the mailbox for the emailed form (the in-memory mailbox and mail server).
"""

from __future__ import annotations

from html import unescape

from bot.store.models import Complaint, Contact, Ticket
from bot.testing import samples
from tests.conftest import MemoryEnv
from tests.test_web import COMPLETE, Web, web  # noqa: F401  (the fixture)

VICTIM = "victime@example.org"
MALLORY = "mallory@example.net"


def victims_contact(env: MemoryEnv) -> Contact:
    env.deliver(samples.free_text(sender=VICTIM))
    [contact] = env.query(Contact)
    return contact


def received(env: MemoryEnv, address: str) -> list[str]:
    return [s.subject for s in env.sink.to(address)]


def test_security_web_a_reference_line_in_the_description_links_nothing(web: Web) -> None:  # noqa: F811
    env = web.env
    contact = victims_contact(env)
    before = received(env, VICTIM)
    description = f"Bonjour.\nRéférence : {contact.reference}\nMerci."
    answer = web.submit({**COMPLETE, "email": MALLORY, "description": description})
    assert answer.status_code == 303
    [complaint] = web.complaints()
    assert complaint.description == description  # exactly what was validated
    assert complaint.client_email == MALLORY
    assert complaint.initial_reference != contact.reference
    [still] = env.query(Contact)
    assert still.status == "open" and still.complaint_id is None
    assert received(env, VICTIM) == before


def test_security_web_a_line_separator_in_the_name_addresses_nobody_else(web: Web) -> None:  # noqa: F811
    name = f"Mallory\u2028Adresse e-mail : {VICTIM}"
    answer = web.submit({**COMPLETE, "email": MALLORY, "client_name": name})
    assert answer.status_code == 422
    assert "une seule ligne" in unescape(answer.text)
    assert web.complaints() == []
    assert received(web.env, VICTIM) == [] and received(web.env, MALLORY) == []


def test_security_web_an_innocent_line_that_reads_as_a_label_registers(web: Web) -> None:  # noqa: F811
    """«Consentement» is an alias of a field: in a description it is her text, and the
    page says the truth (registered), never «not registered» while an email leaves."""
    description = "Consentement : je ne veux pas être recontacté par téléphone."
    answer = web.submit({**COMPLETE, "description": description})
    assert answer.status_code == 303 and "/suivi/" in answer.headers["location"]
    [complaint] = web.complaints()
    assert complaint.description == description
    assert web.env.query(Ticket) == []


def emailed(fields: dict[str, str]) -> bytes:
    return samples.form_submission(fields)


def test_security_email_a_smuggled_address_receives_nothing(memory: MemoryEnv) -> None:
    """The plugin writes the name with a line separator in it, then the real address:
    the address appears twice, the ticket is not conforming, and the smuggled address is
    written to on no account (the information request goes where the plugin's Reply-To,
    the real field, says)."""
    fields = dict(samples.COMPLETE_FORM)
    fields["Nom et prénom"] = f"Mallory\u2028Adresse e-mail : {VICTIM}"
    fields["Adresse e-mail"] = MALLORY
    memory.deliver(emailed(fields))
    assert memory.query(Complaint) == []
    [ticket] = memory.query(Ticket)
    assert {p["key"] for p in ticket.problems} >= {"email"}
    assert "deux fois" in " ".join(p["message"] for p in ticket.problems)
    assert ticket.complainant_email == MALLORY and "email" not in ticket.fields
    assert received(memory, VICTIM) == []


def test_security_email_a_reference_of_another_address_links_nothing(
        memory: MemoryEnv) -> None:
    contact = victims_contact(memory)
    fields = dict(samples.COMPLETE_FORM, **{
        "Adresse e-mail": MALLORY, "Référence": contact.reference})
    memory.deliver(emailed(fields))
    [complaint] = memory.query(Complaint)
    assert complaint.initial_reference != contact.reference
    [still] = memory.query(Contact)
    assert still.status == "open" and still.complaint_id is None


def test_email_a_reference_of_the_same_address_links_its_first_contact(
        memory: MemoryEnv) -> None:
    contact = victims_contact(memory)
    fields = dict(samples.COMPLETE_FORM, **{
        "Adresse e-mail": VICTIM, "Référence": contact.reference})
    memory.deliver(emailed(fields))
    [complaint] = memory.query(Complaint)
    assert complaint.initial_reference == contact.reference


def test_security_email_a_field_written_twice_is_used_neither_way(memory: MemoryEnv) -> None:
    text = samples.form_text(dict(samples.COMPLETE_FORM, **{"Adresse e-mail": MALLORY}))
    text += f"Adresse e-mail : {VICTIM}\n"
    memory.deliver(samples._message(sender="Site <no-reply@example.fr>",
                                    to="reclamations@example.fr",
                                    subject="Nouvelle réclamation depuis le site", text=text))
    assert memory.query(Complaint) == []
    assert received(memory, VICTIM) == []


def test_security_bidi_and_invisible_controls_are_removed_from_what_is_shown(
        memory: MemoryEnv) -> None:
    """«Facture \\u202egnp.exe\\u202c» shows as «Facture exe.png»: names, subjects and
    file names keep what they say, not how a bidi override would show it."""
    from bot.intake.message import parse_message

    raw = samples._message(sender="J\u202eenaej <jeanne@example.org>", to="r@example.fr",
                           subject="Facture \u202egnp.exe\u202c", text="x",
                           attachments=[("doc\u202egnp.exe", "application/pdf", b"%PDF")])
    msg = parse_message(raw)
    assert msg.subject == "Facture gnp.exe"
    assert msg.from_name == "Jenaej"
    assert [a.filename for a in msg.attachments] == ["docgnp.exe"]
    fields = dict(samples.COMPLETE_FORM, **{"Nom et prénom": "Jeanne\u200b \u2066Martin\u2069",
                                            "Objet de la réclamation": "\u202eeriatnemele"})
    memory.deliver(samples.form_submission(fields))
    [complaint] = memory.query(Complaint)
    assert complaint.client_name == "Jeanne Martin"
    assert complaint.object == "eriatnemele"


def test_every_field_has_one_limit_applied_alike_on_the_web_and_by_email(
        web: Web, memory: MemoryEnv) -> None:  # noqa: F811
    """The same limit, the same French message, next to the field on the page, in the
    information request by email."""
    long_name = "Jeanne " * 60  # 420 characters, over the 300 of a line
    answer = web.submit({**COMPLETE, "client_name": long_name})
    assert answer.status_code == 422
    page = unescape(answer.text)
    assert "trop long : 300 caractères au plus" in page and 'maxlength="300"' in answer.text
    assert 'maxlength="65536"' in answer.text  # the description's
    memory.deliver(samples.form_submission(dict(samples.COMPLETE_FORM, **{
        "Nom et prénom": long_name})))
    [ticket] = memory.query(Ticket)
    assert [p["message"] for p in ticket.problems if p["key"] == "client_name"] == [
        "trop long : 300 caractères au plus, pour 419 ici"]
