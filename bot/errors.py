"""The one exception tree of reclambot.

Everything the bot raises on purpose derives from :class:`ReclambotError`, so the
command line can turn any of them into one clear line instead of a traceback.
Only :class:`TransientError` and its children are ever retried. No module lets anything
else out on purpose (``tests/test_units.py`` walks the package to keep it so)::

    ReclambotError
    ├── UsageError          a command-line mistake
    ├── CommandError        a director's command line (names the line to fix)
    ├── ConfigError         config.toml (names the key)
    ├── RulesError          a file of rules/
    ├── TemplateError       a template of templates/
    ├── SchemaError         the register's schema
    ├── MessageError        an email that cannot be parsed (quarantined)
    ├── LockError           another reclambot holds the register
    ├── OAuth2Error         a sign-in that cannot succeed as configured
    ├── DeliveryRefused     the SMTP server refused an email for good
    ├── StoreError          the register or a dossier refused what should not fail
    │   └── ReferenceRefused  not a reference: never a dossier's path (also a ValueError)
    └── TransientError      worth trying again later
        ├── SourceError     the mailbox (IMAP, Maildir)
        ├── SinkError       the sending side (SMTP)
        └── TokenEndpointError
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.intake.commandline import Command


class ReclambotError(Exception):
    """Base class of every error the bot raises on purpose."""


class UsageError(ReclambotError):
    """A mistake on the command line (an option's value, a path), reported in one line."""


class CommandError(ReclambotError):
    """A command the bot cannot carry out; names the line the director must fix."""

    def __init__(self, command: Command | None, message: str) -> None:
        self.command = command
        self.message = message
        where = f"ligne {command.line} « {command.source.strip()} »" if command else "message"
        super().__init__(f"{where} : {message}")


class ConfigError(ReclambotError):
    """The configuration file is missing, unreadable, or has a wrong or missing key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config : {key} : {problem}" if key else f"config : {problem}")


class RulesError(ReclambotError):
    """A file of ``rules/`` is unreadable or inconsistent."""


class TemplateError(ReclambotError):
    """An email template is missing or fails to render."""


class MessageError(ReclambotError):
    """An inbound message cannot be parsed or handled; it goes to quarantine."""


class LockError(ReclambotError):
    """Another bot process already works on this mailbox and database."""


class OAuth2Error(ReclambotError):
    """No usable OAuth2 token: ``reclambot auth`` must be run (again)."""


class TransientError(ReclambotError):
    """A failure that may go away by itself (network, server busy): retried with backoff."""


class SourceError(TransientError):
    """The mailbox (IMAP server or Maildir) could not be read or updated."""


class SinkError(TransientError):
    """An email could not be handed over to the SMTP server (temporary failure)."""


class TokenEndpointError(TransientError):
    """The OAuth2 token endpoint could not be reached or failed for a while."""


class DeliveryRefused(ReclambotError):
    """The SMTP server refused an email permanently (5xx): never retried."""


class SchemaError(ReclambotError):
    """The register's schema is older or newer than this version of reclambot expects."""


class StoreError(ReclambotError):
    """The register or a dossier refused an operation that should not fail."""


class ReferenceRefused(StoreError, ValueError):
    """A string given as a reference is none: it never becomes a dossier's path."""
