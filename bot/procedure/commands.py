"""The director's commands, written as ``#lines`` in a plain email reply.

Only the new text of the reply is read (quoted history stripped). A line that starts with
``#`` starts a command (case and accents ignored); the lines under it, up to the next
command or a ``--`` signature line, are its text. A command email is all-or-nothing: the
commands run one after the other inside a savepoint, and the first error rolls them all
back and is reported to the director with the line to fix.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import local
from bot.core.states import IN_PROGRESS, ComplaintStatus, EmailKind
from bot.core.text import fold, reflow
from bot.intake.commandline import Command, CommandError
from bot.outbound.compose import Email
from bot.outbound.outbox import enqueue
from bot.procedure.guard import quoted_lines
from bot.store.db import append_row, message_origin, next_in_sequence
from bot.store.deadlines import next_deadline
from bot.store.models import ActionTaken, Complaint, Event, Failure, Inbound

if TYPE_CHECKING:
    from bot.app import App
    from bot.intake.message import InboundMessage

OUTCOMES = {"positive": "positive", "negative": "négative", "partielle": "partielle"}
_ISO_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_FR_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")


def parse_day(value: str) -> dt.date | None:
    """``AAAA-MM-JJ`` or ``JJ/MM/AAAA``; ``None`` if ``value`` does not look like a date."""
    if _ISO_DATE.match(value):
        return dt.date.fromisoformat("-".join(part.zfill(2) for part in value.split("-")))
    if _FR_DATE.match(value):
        day, month, year = value.split("/")
        return dt.date(int(year), int(month), int(day))
    return None


def one_year_after(day: dt.date) -> dt.date:
    """The same day a year later (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def two_months_after(day: dt.date) -> dt.date:
    """The same day two months later (the month's last day where it has no such day)."""
    return add_months(day, 2)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the month's last day where it has no such day)."""
    month = day.month + months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class Context:
    """What a command acts on, and where its confirmation lines go."""

    session: Session
    app: App
    msg: InboundMessage
    row: Inbound
    complaint: Complaint | None
    done: list[str]

    @property
    def now(self) -> dt.datetime:
        return self.row.processed_at

    @property
    def today(self) -> dt.date:
        return local(self.now).date()

    def event(self, kind: str, detail: dict[str, object]) -> None:
        append_row(self.session, Event, at=self.now, kind=kind,
                   origin=message_origin(self.session, self.row), detail=detail,
                   complaint_id=self.complaint.id if self.complaint else None)

    def open_complaint(self, command: Command) -> Complaint:
        complaint = self.any_complaint(command)
        if complaint.status == ComplaintStatus.CLOSED:
            raise CommandError(command, f"la réclamation {complaint.number} est clôturée "
                               "(#rouvrir d'abord)")
        if complaint.status == ComplaintStatus.REQUALIFIED:
            raise CommandError(command, f"{complaint.number} a été requalifiée : elle n'est "
                               "plus au dossier des réclamations")
        return complaint

    def touch(self, complaint: Complaint) -> None:
        complaint.updated_at = self.now

    def any_complaint(self, command: Command) -> Complaint:
        """The complaint the email answers, whatever its status."""
        if self.complaint is None:
            raise CommandError(command, "cette commande doit répondre au message d'une "
                               "réclamation (son objet porte le numéro et la clé)")
        return self.complaint

    def tell_complainant(self, kind: EmailKind, context: dict[str, object]) -> None:
        """Queue an email written for the director to the complainant."""
        complaint = self.complaint
        assert complaint is not None
        enqueue(self.session, self.app, Email(
            kind, [complaint.client_email],
            context={"complaint": complaint, **context},
            reference=complaint.number,
            auto_submitted="auto-generated"),
            complaint=complaint)


def _required_text(command: Command, what: str) -> str:
    if not command.text:
        raise CommandError(command, f"{what} manquant (écrivez-le après la commande)")
    return command.text


def cmd_failure(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    text = _required_text(command, "texte du manquement")
    ctx.session.add(Failure(complaint_id=complaint.id, text=text, recorded_at=ctx.now,
                            origin=ctx.row.message_id))
    ctx.touch(complaint)
    ctx.event("failure", {"text": text})
    ctx.done.append(f"Manquement enregistré : {text}")


def cmd_action(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    first, _, rest = command.args.partition(" ")
    day = ctx.today
    text = command.text
    if first and (_ISO_DATE.match(first) or _FR_DATE.match(first) or first[:1].isdigit()):
        try:
            parsed = parse_day(first)
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(command, f"date invalide « {first} » (format AAAA-MM-JJ)")
        day = parsed
        text = "\n".join(p for p in (rest.strip(), command.body) if p)
    if not text:
        raise CommandError(command, "texte de l'action manquant (#action AAAA-MM-JJ texte)")
    ctx.session.add(ActionTaken(complaint_id=complaint.id, day=day, text=text,
                                recorded_at=ctx.now, origin=ctx.row.message_id))
    ctx.touch(complaint)
    ctx.event("action", {"day": day.isoformat(), "text": text})
    ctx.done.append(f"Action du {day:%d/%m/%Y} enregistrée : {text}")


def cmd_response(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    first, _, rest = command.args.partition(" ")
    outcome = fold(first).replace(" ", "")
    if outcome not in OUTCOMES:
        raise CommandError(command, "issue de la réponse manquante ou inconnue : écrivez "
                           "#reponse positive, #reponse negative ou #reponse partielle")
    # Her paragraphs, without the line breaks her client added (the complainant's email,
    # the follow-up page and the register all show this text).
    text = reflow("\n".join(p for p in (rest.strip(), command.body) if p))
    if not text:
        raise CommandError(command, "texte de la réponse manquant (écrivez-le sous la "
                           "ligne #reponse)")
    app = ctx.app
    year = ctx.today.year
    prefix = ctx.app.rulebook.response_prefix
    sequence = next_in_sequence(ctx.session, f"{prefix}-{year}")
    number = f"{prefix}-{year}-{sequence:04d}"
    complaint.response_outcome = OUTCOMES[outcome]
    complaint.response_text = text
    complaint.response_date = ctx.today
    complaint.response_number = number
    complaint.status = ComplaintStatus.ANSWERED
    ctx.touch(complaint)
    ctx.tell_complainant(EmailKind.RESPONSE, {"text": text, "outcome": OUTCOMES[outcome]})
    ctx.event("response", {"number": number, "outcome": OUTCOMES[outcome]})
    ctx.done.append(f"Réponse {number} ({OUTCOMES[outcome]}) envoyée à {complaint.client_email}")
    consumer = complaint.is_consumer is not False  # unknown: treated as a consumer
    if outcome != "positive" and consumer:
        written = local(complaint.initial_contact_at or complaint.received_at).date()
        ctx.tell_complainant(EmailKind.MEDIATION_RIGHTS, {
            "mediation": app.config.mediation, "written_on": written,
            "last_day": one_year_after(written),
            "two_months": two_months_after(local(complaint.received_at).date())})
        complaint.mediation_sent_at = ctx.now
        ctx.event("mediation_information", {"mediator": app.config.mediation.name})
        ctx.done.append(f"Information sur la médiation de la consommation "
                        f"({app.config.mediation.name}) envoyée")
    elif outcome != "positive":
        ctx.done.append("Pas d'information sur la médiation : le réclamant n'agit pas en "
                        "consommateur (#consommateur oui pour corriger)")


def cmd_close(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    if command.text:
        complaint.resolution = command.text
    complaint.status = ComplaintStatus.CLOSED
    complaint.closed_at = ctx.now
    ctx.touch(complaint)
    ctx.event("closed", {"resolution": bool(command.text)})
    ctx.done.append(f"Réclamation {complaint.number} clôturée le {ctx.today:%d/%m/%Y}"
                    + (f" ; résolution : {command.text}" if command.text else ""))


def cmd_reopen(ctx: Context, command: Command) -> None:
    complaint = ctx.complaint
    if complaint is None or complaint.status != ComplaintStatus.CLOSED:
        raise CommandError(command, "seule une réclamation clôturée peut être rouverte")
    complaint.status = (ComplaintStatus.ANSWERED if complaint.response_number
                        else ComplaintStatus.OPEN)
    complaint.closed_at = None
    complaint.reopened_count += 1
    ctx.touch(complaint)
    ctx.event("reopened", {"reason": command.text})
    ctx.done.append(f"Réclamation {complaint.number} rouverte"
                    + (f" : {command.text}" if command.text else ""))


def cmd_requalify(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    reason = _required_text(command, "motif de la requalification")
    complaint.status = ComplaintStatus.REQUALIFIED
    complaint.requalified_reason = reason
    ctx.touch(complaint)
    ctx.tell_complainant(EmailKind.REQUALIFIED, {})
    ctx.event("requalified", {"reason": reason})
    ctx.done.append(f"{complaint.number} requalifiée (hors dossier des réclamations) : {reason}; "
                    f"le demandeur a été orienté")


def cmd_note(ctx: Context, command: Command) -> None:
    ctx.any_complaint(command)
    text = _required_text(command, "texte de la note")
    ctx.event("note", {"text": text})
    ctx.done.append(f"Note interne enregistrée (jamais envoyée au réclamant) : {text}")


def cmd_consumer(ctx: Context, command: Command) -> None:
    complaint = ctx.any_complaint(command)
    value = fold(command.args)
    if value not in ("oui", "non"):
        raise CommandError(command, "écrivez #consommateur oui ou #consommateur non")
    complaint.is_consumer = value == "oui"
    ctx.touch(complaint)
    ctx.event("consumer", {"is_consumer": complaint.is_consumer})
    verb = "agit" if value == "oui" else "n'agit pas"
    ctx.done.append(f"Le réclamant {verb} en consommateur")


def cmd_extend(ctx: Context, command: Command) -> None:
    complaint = ctx.open_complaint(command)
    if complaint.status != ComplaintStatus.OPEN or complaint.answer_due is None:
        raise CommandError(command, "seul le délai de réponse d'une réclamation pas encore "
                           "répondue peut être prolongé")
    first, _, rest = command.args.partition(" ")
    if not first.isdigit() or int(first) < 1:
        raise CommandError(command, "écrivez #prolonger <nombre de jours ouvrés> <motif>")
    reason = reflow("\n".join(p for p in (rest.strip(), command.body) if p))
    if not reason:
        raise CommandError(command, "motif de la prolongation manquant")
    new_due = ctx.app.rulebook.calendar.add_working_days(complaint.answer_due, int(first))
    months = ctx.app.rulebook.time.max_answer_months
    limit = add_months(local(complaint.received_at).date(), months)
    if new_due > limit:
        raise CommandError(command, (
            f"impossible : la nouvelle échéance ({new_due:%d/%m/%Y}) dépasserait {months} mois "
            f"après le ticket ({limit:%d/%m/%Y}) ; passé ce délai sans réponse, un consommateur "
            f"peut saisir le médiateur"))
    old_due = complaint.answer_due
    complaint.answer_due = new_due
    complaint.extension_reason = reason
    ctx.touch(complaint)
    ctx.tell_complainant(EmailKind.INTERIM_NOTICE, {"reason": reason, "old_due": old_due})
    ctx.event("extended", {"from": old_due.isoformat(), "to": new_due.isoformat(),
                           "working_days": int(first)})
    ctx.done.append(f"Délai de réponse prolongé au {new_due:%d/%m/%Y} ; le réclamant en a été "
                    f"informé")


def cmd_hold(ctx: Context, command: Command) -> None:
    complaint = ctx.any_complaint(command)
    reason = _required_text(command, "motif de la conservation")
    complaint.legal_hold = reason
    ctx.touch(complaint)
    ctx.event("legal_hold", {"reason": reason})
    ctx.done.append(f"Conservation au-delà du délai RGPD : l'effacement de {complaint.number} "
                    f"est suspendu ({reason}) ; #liberer pour le lever")


def cmd_release(ctx: Context, command: Command) -> None:
    complaint = ctx.complaint
    if complaint is None or not complaint.legal_hold:
        raise CommandError(command, "aucune conservation n'est en cours sur ce dossier")
    complaint.legal_hold = ""
    ctx.touch(complaint)
    ctx.event("legal_hold_lifted", {})
    ctx.done.append("Conservation levée : l'effacement suivra le délai normal")


def cmd_relationship_end(ctx: Context, command: Command) -> None:
    complaint = ctx.any_complaint(command)
    day = ctx.today
    if command.args:
        try:
            parsed = parse_day(command.args.split()[0])
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(command, f"date invalide « {command.args} » (format AAAA-MM-JJ)")
        day = parsed
    complaint.relationship_ended_on = day
    ctx.touch(complaint)
    ctx.event("relationship_ended", {"day": day.isoformat()})
    ctx.done.append(f"Fin de la relation enregistrée au {day:%d/%m/%Y}")


def cmd_new_key(ctx: Context, command: Command) -> None:
    """A new command key for the complaint: the one that leaked (in a forwarded
    notification, a quoted reply) opens nothing from now on."""
    complaint = ctx.any_complaint(command)
    complaint.key_generation += 1
    ctx.touch(complaint)
    ctx.event("key_renewed", {"generation": complaint.key_generation})
    tag = ctx.app.tokens.tag(complaint.number, complaint.key_generation)
    ctx.done.append(f"Nouvelle clé de {complaint.number} : répondez désormais aux messages "
                    f"qui portent {tag} dans leur objet (celui-ci la porte) ; l'ancienne clé "
                    "n'ouvre plus rien")


def cmd_help(ctx: Context, command: Command) -> None:
    ctx.done.append(ctx.app.renderer.render_template("_commands.txt").strip())


def cmd_list(ctx: Context, command: Command) -> None:
    complaints = ctx.session.scalars(
        select(Complaint).where(Complaint.status.in_(IN_PROGRESS))
        .order_by(Complaint.year, Complaint.sequence)
    ).all()
    if not complaints:
        ctx.done.append("Aucune réclamation ouverte.")
        return
    lines = [f"{len(complaints)} réclamation(s) ouverte(s) (entre parenthèses : jours "
             "depuis la réception) :"]
    for c in complaints:
        age = (ctx.today - local(c.received_at).date()).days
        deadline = next_deadline(c, ctx.app.rulebook)
        nxt = ""
        if deadline is not None:
            kind, due = deadline
            late = " — EN RETARD" if due < ctx.today else ""
            nxt = f" — {kind} avant le {due:%d/%m/%Y}{late}"
        lines.append(f"- {c.number} ({age} j) {c.client_name} : {c.object[:60]}{nxt}")
    ctx.done.append("\n".join(lines))


def cmd_transmit(ctx: Context, command: Command) -> None:
    """Read at intake, as the first line of a new message (:mod:`bot.intake.forwarded`):
    in a reply to a notification it would pass the complaint's thread on to nobody."""
    raise CommandError(command, "#transmettre s'écrit en première ligne d'un nouveau message "
                                "(un transfert, ou un courrier joint), pas en réponse à une "
                                "notification")


HANDLERS: dict[str, Callable[[Context, Command], None]] = {
    "manquement": cmd_failure,
    "action": cmd_action,
    "reponse": cmd_response,
    "cloturer": cmd_close,
    "rouvrir": cmd_reopen,
    "requalifier": cmd_requalify,
    "note": cmd_note,
    "consommateur": cmd_consumer,
    "aide": cmd_help,
    "liste": cmd_list,
    "prolonger": cmd_extend,
    "conserver": cmd_hold,
    "liberer": cmd_release,
    "finrelation": cmd_relationship_end,
    "transmettre": cmd_transmit,
    "nouvellecle": cmd_new_key,
}


def _guard(ctx: Context, commands: list[Command]) -> None:
    """Refuse the whole email if a command's line or text carries what only the bot's
    internal mail does (:mod:`bot.procedure.guard`): a quote no rule recognised."""
    for command in commands:
        found = quoted_lines("\n".join((command.source, command.body)), ctx.app)
        if found:
            lines = " ; ".join(f"« {line[:80]}{'…' if len(line) > 80 else ''} » ({mark})"
                               for line, mark in found)
            raise CommandError(command, (
                f"ces lignes semblent venir de la notification citée : {lines}. Rien n'a "
                "été enregistré ni envoyé au réclamant. Écrivez vos commandes au-dessus du "
                "message cité, ou supprimez la citation, puis renvoyez-les"))


def execute(ctx: Context, commands: list[Command]) -> None:
    """Run ``commands`` in order; the caller's savepoint makes them all-or-nothing."""
    if not commands:
        raise CommandError(None, "aucune commande trouvée : les commandes sont des lignes "
                           "qui commencent par # (envoyez #aide pour la liste)")
    _guard(ctx, commands)
    for command in commands:
        HANDLERS[command.name](ctx, command)
