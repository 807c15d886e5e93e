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
    ERASED = "erased"


class OutboxStatus(StrEnum):
    """Where an email of the bot stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    IMPORTED = "imported"  # rendered for past mail by `reclambot import`, never sent


#: An email that has not left (yet, or for good).
UNSENT = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED)


class InboundState(StrEnum):
    """Where a fetched message stands: its row is committed before the world is touched."""

    COMMITTED = "committed"  # decided and handled; filing (dossier, folder) still to do
    DONE = "done"  # filed, or left in the inbox on purpose
    RETRIED = "retried"  # a quarantined message given another go by `quarantine retry`


#: The one French vocabulary of states: every email, document and command output shows
#: these words; the database keeps the codes.
STATE_LABELS: dict[type[StrEnum], dict[str, str]] = {
    ComplaintStatus: {"open": "en cours", "answered": "répondue", "closed": "clôturée",
                      "requalified": "requalifiée"},
    ContactStatus: {"open": "en attente du formulaire", "converted": "formulaire reçu",
                    "abandoned": "sans suite", "erased": "effacé"},
    TicketStatus: {"incomplete": "incomplet", "completed": "complété",
                   "abandoned": "sans suite", "erased": "effacé"},
    OutboxStatus: {"pending": "en attente", "sending": "en cours d'envoi", "sent": "envoyé",
                   "failed": "en échec", "imported": "importé (jamais envoyé)"},
    InboundState: {"committed": "décidé, pas encore classé", "done": "classé",
                   "retried": "repris de la quarantaine"},
}


class Action(StrEnum):
    """What became of a message: the chain's decision (:mod:`bot.intake.classify`), or
    one of the three outcomes the pipeline sets before any rule runs."""

    ROBOT = "robot"  # automatic message: filed, never answered
    BOUNCE = "bounce"  # one of our emails could not be delivered
    TOO_LARGE = "too_large"  # over a size limit: kept on the server, the sender is told
    COMMAND = "command"  # the director acts on the register
    ALERT = "alert"  # someone tried to act on the register without the right: director warned
    DIRECTOR = "director"  # the director's ordinary mail: left for her
    SUBMISSION = "submission"  # the official form, filled in
    TICKET_REPLY = "ticket_reply"  # information supplied for an incomplete ticket
    CONTACT_REPLY = "contact_reply"  # answer to the form-link email
    COMPLAINT_REPLY = "complaint_reply"  # the complainant writes about a registered complaint
    NEW_CONTACT = "new_contact"  # free-text complaint: answered with the form link
    FORWARD = "forward"  # staff pass a complaint on: its author gets the form link
    FORWARD_REFUSED = "forward_refused"  # what staff passed on names nobody to write to
    LEAVE = "leave"  # not for the bot: left unread in the inbox for humans
    # Set by the pipeline, never by a rule:
    QUARANTINE = "quarantine"  # unparsable: kept aside with its reason
    DUPLICATE = "duplicate"  # the same content as a message already handled
    RESUMED = "resumed"  # a message handled but never filed, filed in its own place


#: The actions that leave a message in the quarantine folder, for a person to look at.
QUARANTINED = (Action.QUARANTINE, Action.TOO_LARGE)


#: What each action is called where people read it (the demo, the audit file).
ACTION_LABELS: dict[str, str] = {
    Action.ROBOT: "robot (jamais de réponse)",
    Action.BOUNCE: "rapport d'échec de remise",
    Action.TOO_LARGE: "trop volumineux",
    Action.COMMAND: "commandes de la direction",
    Action.ALERT: "alerte",
    Action.DIRECTOR: "courriel de la direction",
    Action.SUBMISSION: "formulaire reçu",
    Action.TICKET_REPLY: "complément d'un ticket",
    Action.CONTACT_REPLY: "réponse au lien du formulaire",
    Action.COMPLAINT_REPLY: "message sur une réclamation",
    Action.NEW_CONTACT: "premier contact",
    Action.FORWARD: "transmis par l'équipe",
    Action.FORWARD_REFUSED: "transmission refusée",
    Action.LEAVE: "laissé aux personnes",
    Action.QUARANTINE: "en quarantaine",
    Action.DUPLICATE: "copie d'un message déjà traité",
    Action.RESUMED: "classé à la place de sa copie",
}


class EmailKind(StrEnum):
    """Every kind of email the bot sends; each has its three templates
    (``templates/<kind>.subject.txt``, ``.txt``, ``.html``)."""

    ACKNOWLEDGEMENT = "acknowledgement"
    FORM_LINK = "form_link"
    INFORMATION_REQUEST = "information_request"
    RESPONSE = "response"
    MEDIATION_RIGHTS = "mediation_rights"
    INTERIM_NOTICE = "interim_notice"
    REQUALIFIED = "requalified"
    SATISFACTION = "satisfaction"
    TICKET_REMINDER = "ticket_reminder"
    TOO_LARGE = "too_large"
    FORWARD_CONFIRMATION = "forward_confirmation"
    FORWARD_REFUSED = "forward_refused"
    DIRECTOR_NEW_COMPLAINT = "director_new_complaint"
    DIRECTOR_CONFIRMATION = "director_confirmation"
    DIRECTOR_ERROR = "director_error"
    DIRECTOR_ALERT = "director_alert"
    DIRECTOR_CORRESPONDENCE = "director_correspondence"
    DIRECTOR_DELIVERY_FAILURE = "director_delivery_failure"
    DIRECTOR_UNREACHABLE = "director_unreachable"
    DIRECTOR_UNREACHABLE_TICKET = "director_unreachable_ticket"
    DIRECTOR_DIGEST = "director_digest"
    DIRECTOR_MONTHLY_REPORT = "director_monthly_report"


#: What each kind of email the bot sends is called where people read it (``outbox``).
EMAIL_KIND_LABELS: dict[str, str] = {
    EmailKind.ACKNOWLEDGEMENT: "accusé de réception",
    EmailKind.FORM_LINK: "lien du formulaire",
    EmailKind.INFORMATION_REQUEST: "demande de complément",
    EmailKind.RESPONSE: "réponse",
    EmailKind.MEDIATION_RIGHTS: "information médiation",
    EmailKind.INTERIM_NOTICE: "prolongation du délai",
    EmailKind.REQUALIFIED: "requalification",
    EmailKind.SATISFACTION: "enquête de satisfaction",
    EmailKind.TICKET_REMINDER: "rappel de ticket incomplet",
    EmailKind.TOO_LARGE: "message trop volumineux",
    EmailKind.FORWARD_CONFIRMATION: "transmission enregistrée (équipe)",
    EmailKind.FORWARD_REFUSED: "transmission refusée (équipe)",
    EmailKind.DIRECTOR_NEW_COMPLAINT: "nouvelle réclamation (direction)",
    EmailKind.DIRECTOR_CONFIRMATION: "confirmation de commandes (direction)",
    EmailKind.DIRECTOR_ERROR: "commande refusée (direction)",
    EmailKind.DIRECTOR_ALERT: "alerte (direction)",
    EmailKind.DIRECTOR_CORRESPONDENCE: "message du réclamant (direction)",
    EmailKind.DIRECTOR_DELIVERY_FAILURE: "envoi refusé (direction)",
    EmailKind.DIRECTOR_UNREACHABLE: "réclamant injoignable (direction)",
    EmailKind.DIRECTOR_UNREACHABLE_TICKET: "ticket sans adresse (direction)",
    EmailKind.DIRECTOR_DIGEST: "point du jour (direction)",
    EmailKind.DIRECTOR_MONTHLY_REPORT: "rapport mensuel (direction)",
}


def state_label(kind: type[StrEnum], code: str) -> str:
    """The French word for ``code``, a state of ``kind`` (the code itself if unknown)."""
    return STATE_LABELS[kind].get(code, code)
