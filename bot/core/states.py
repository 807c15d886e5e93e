"""States and kinds, with the one French vocabulary people read: the database keeps
the codes (the enums' values), every email, document and command output shows the
words. The bottom of the house: it imports nothing from ``bot``."""

from __future__ import annotations

from enum import StrEnum


class ComplaintStatus(StrEnum):
    """Where a complaint stands; the register keeps these codes."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"
    REQUALIFIED = "requalified"


#: A complaint still being handled: not closed, not requalified.
IN_PROGRESS = (ComplaintStatus.OPEN, ComplaintStatus.ANSWERED)


class ContactStatus(StrEnum):
    """Where an initial contact stands."""

    OPEN = "open"
    CONVERTED = "converted"
    ABANDONED = "abandoned"
    ERASED = "erased"


class TicketStatus(StrEnum):
    """Where a non-conforming form submission stands."""

    INCOMPLETE = "incomplete"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


class OutboxStatus(StrEnum):
    """Where an email of the bot stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    IMPORTED = "imported"  # rendered for past mail by `reclambot import`, never sent


#: An email that has not left (yet, or for good).
UNSENT = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED)


#: The one French vocabulary of states: every email, document and command output shows
#: these words; the database keeps the codes.
STATE_LABELS: dict[type[StrEnum], dict[str, str]] = {
    ComplaintStatus: {"open": "en cours", "answered": "répondue", "closed": "clôturée",
                      "requalified": "requalifiée"},
    ContactStatus: {"open": "en attente du formulaire", "converted": "formulaire reçu",
                    "abandoned": "sans suite", "erased": "effacé"},
    TicketStatus: {"incomplete": "incomplet", "completed": "complété",
                   "abandoned": "sans suite"},
    OutboxStatus: {"pending": "en attente", "sending": "en cours d'envoi", "sent": "envoyé",
                   "failed": "en échec", "imported": "importé (jamais envoyé)"},
}


#: What each kind of email the bot sends is called where people read it (``outbox``).
EMAIL_KIND_LABELS: dict[str, str] = {
    "acknowledgement": "accusé de réception", "form_link": "lien du formulaire",
    "information_request": "demande de complément", "response": "réponse",
    "mediation_rights": "information médiation", "interim_notice": "prolongation du délai",
    "requalified": "requalification", "satisfaction": "enquête de satisfaction",
    "ticket_reminder": "rappel de ticket incomplet", "too_large": "message trop volumineux",
    "director_new_complaint": "nouvelle réclamation (direction)",
    "director_confirmation": "confirmation de commandes (direction)",
    "director_error": "commande refusée (direction)", "director_alert": "alerte (direction)",
    "director_correspondence": "message du réclamant (direction)",
    "director_delivery_failure": "envoi refusé (direction)",
    "director_unreachable": "réclamant injoignable (direction)",
    "director_unreachable_ticket": "ticket sans adresse (direction)",
    "director_digest": "point du jour (direction)",
    "director_monthly_report": "rapport mensuel (direction)",
}


def state_label(kind: type[StrEnum], code: str) -> str:
    """The French word for ``code``, a state of ``kind`` (the code itself if unknown)."""
    return STATE_LABELS[kind].get(code, code)
