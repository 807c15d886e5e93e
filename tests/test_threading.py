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
