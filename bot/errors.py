"""The one exception tree of reclambot.

Everything the bot raises on purpose derives from :class:`ReclambotError`, so the
command line can turn any of them into one clear line instead of a traceback.
Only :class:`TransientError` and its children are ever retried::

    ReclambotError
    ├── UsageError          a command-line mistake
    ├── ConfigError         config.toml (names the key)
    ├── RulesError          a file of rules/
    ├── TemplateError       a template of templates/
    ├── SchemaError         the register's schema
    ├── MessageError        an email that cannot be parsed (quarantined)
    ├── LockError           another reclambot holds the register
    ├── OAuth2Error         a sign-in that cannot succeed as configured
    ├── DeliveryRefused     the SMTP server refused an email for good
    └── TransientError      worth trying again later
        ├── SourceError     the mailbox (IMAP, Maildir)
        ├── SinkError       the sending side (SMTP)
        └── TokenEndpointError
"""

from __future__ import annotations


class ReclambotError(Exception):
    """Base class of every error the bot raises on purpose."""


class UsageError(ReclambotError):
    """A mistake on the command line (an option's value, a path), reported in one line."""


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
