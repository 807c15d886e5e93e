"""Rules for mail from the director's addresses: commands (with a valid token), alerts,
or her own mail, left for her.

A command that changes the register needs the complaint's token in the subject; the read-
only ones (``#aide``, ``#liste``) need none. The commands are parsed here, once: the
decision carries them to the handler that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.intake.authcheck import authentication_problem
from bot.intake.classify.chain import Context, Thread
from bot.intake.commandline import Command, CommandError
from bot.intake.commandline import parse as parse_commands
from bot.store import tokens
from bot.store.models import Complaint

if TYPE_CHECKING:
    import re

    from bot.intake.message import InboundMessage


def from_director(msg: InboundMessage, ctx: Context) -> str | None:
    if msg.from_address in ctx.app.config.organisation.director_addresses:
        return "envoyé depuis une adresse de la direction : jamais une réclamation"
    return None


def _token(msg: InboundMessage, ctx: Context) -> re.Match[str] | None:
    pattern = tokens.subject_pattern(ctx.app.rulebook.complaint_prefix)
    return ctx.once("token", lambda: pattern.search(msg.subject))


def _parsed(msg: InboundMessage, ctx: Context) -> tuple[Command, ...] | CommandError:
    """The commands of the reply's new text, or the error naming the line to fix."""

    def parse() -> tuple[Command, ...] | CommandError:
        try:
            return tuple(parse_commands(ctx.reading(msg).text,
                                        ctx.app.rulebook.commands.words))
        except CommandError as error:
            return error

    return ctx.once("commands", parse)


def _carry(msg: InboundMessage, ctx: Context) -> None:
    """Hand the commands (or their error) to the handler through the decision."""
    parsed = _parsed(msg, ctx)
    if isinstance(parsed, CommandError):
        ctx.command_error = parsed
    else:
        ctx.commands = parsed


def command_tag(msg: InboundMessage, ctx: Context) -> str | None:
    """The subject carries a complaint's command tag ``[REC-…/TOKEN]``."""
    found = _token(msg, ctx)
    return f"l'objet porte l'étiquette de commande de {found.group(1)}" if found else None


def _tagged_complaint(msg: InboundMessage, ctx: Context) -> Complaint | None:
    """The complaint of the subject's tag, if its token is that complaint's."""

    def find() -> Complaint | None:
        found = _token(msg, ctx)
        if found is None:
            return None
        number, token = found.groups()
        complaint = ctx.session.scalar(select(Complaint).where(Complaint.number == number))
        return complaint if complaint and ctx.app.tokens.check(
            number, token, complaint.key_generation) else None

    return ctx.once("tagged_complaint", find)


def invalid_token(msg: InboundMessage, ctx: Context) -> str | None:
    found = _token(msg, ctx)
    if found is not None and _tagged_complaint(msg, ctx) is None:
        return f"la clé de l'objet n'est pas valable pour {found.group(1)}"
    return None


def authentication(msg: InboundMessage, ctx: Context) -> str | None:
    """``Authentication-Results`` does not vouch for the sender, when the check is required."""
    return authentication_problem(msg, ctx.app.config.security)


def valid_token(msg: InboundMessage, ctx: Context) -> str | None:
    complaint = _tagged_complaint(msg, ctx)
    if complaint is None:
        return None
    ctx.thread = Thread("complaint", complaint.id, complaint.number, complaint.client_email)
    _carry(msg, ctx)
    return f"clé de commande valable pour {complaint.number}"


def commands_without_token(msg: InboundMessage, ctx: Context) -> str | None:
    """Commands that change the register (or a line that is no command) with no token."""
    parsed = _parsed(msg, ctx)
    if isinstance(parsed, CommandError):
        return f"une ligne n'est pas une commande connue, sans la clé d'une réclamation ({parsed})"
    if {c.name for c in parsed} - ctx.app.rulebook.commands.read_only:
        return "des commandes sans la clé d'une réclamation dans l'objet"
    return None


def read_only_commands(msg: InboundMessage, ctx: Context) -> str | None:
    parsed = _parsed(msg, ctx)
    if isinstance(parsed, CommandError) or not parsed:
        return None
    _carry(msg, ctx)
    return f"commande(s) de lecture seule {', '.join(c.name for c in parsed)}"


def foreign_token(msg: InboundMessage, ctx: Context) -> str | None:
    """A command tag in the subject of someone who is not the director."""
    if _token(msg, ctx) is not None:
        return (f"une clé de commande dans l'objet, mais {msg.from_address or 'l’expéditeur'} "
                "n'est pas une adresse de la direction")
    return None
