"""Every email to a complainant follows her conversation: her mail client shows one
thread per complaint, not one per email (In-Reply-To and References)."""

from __future__ import annotations

from bot.store.models import Outbox
from tests.conftest import BotEnv
from tests.test_director import CLIENT, command, register


def test_later_emails_to_the_complainant_follow_her_conversation(env: BotEnv) -> None:
    notification = register(env)
    command(env, notification, "#prolonger 5 formateur absent\n")
    command(env, notification, "#reponse negative\nNous ne pouvons pas rembourser.\n")
    sent = {row.message_id: row.kind for row in env.query(Outbox)}
    emails = env.smtp.handler.to(CLIENT)
    kinds = [sent[str(c.message["Message-ID"]).strip()] for c in emails]
    assert kinds == ["acknowledgement", "interim_notice", "response", "mediation_rights"]
    ids = [str(c.message["Message-ID"]).strip() for c in emails]
    for later in emails[1:]:
        parent = str(later.message["In-Reply-To"] or "")
        assert parent in ids[:ids.index(str(later.message["Message-ID"]).strip())], kinds
        assert parent in str(later.message["References"])
    assert str(emails[1].message["In-Reply-To"]) == ids[0]  # on the acknowledgement


def test_an_answer_to_her_email_keeps_her_subject_but_none_of_its_references(
        env: BotEnv) -> None:
    """«Re: <hers> – <ours>»: Gmail threads by subject too. Nothing in hers that looks
    like a reference of the register is carried into ours, where replies look for it."""
    from bot.testing import samples

    env.append(samples.free_text(sender="lea@example.org",
                                 subject="RÉCLAMATION formation annulée [Réf. CT-AAAA2222]"))
    env.append(samples.form_submission())  # the form plugin's subject is not hers
    env.run()
    [link] = env.smtp.handler.to("lea@example.org")
    assert link.subject.startswith("Re: RÉCLAMATION formation annulée – Votre réclamation")
    assert "CT-AAAA2222" not in link.subject
    [contact] = env.contacts()
    assert f"[Réf. {contact.reference}]" in link.subject
    [ack] = [c for c in env.smtp.handler.to(CLIENT) if "Accusé" in c.subject]
    assert ack.subject.startswith("Accusé de réception")
