"""Command tokens: an HMAC bound to one complaint, carried in the subject of the director's mail.

A plain "Répondre" brings the token back; a token cannot be guessed, forged, or moved to
another complaint without the secret (``[security] token_secret``, or one generated once
and kept in the database when the configuration sets none).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Secret
from bot.store.models import Setting

TOKEN_LENGTH = 16
SIGNATURE_LENGTH = 26
SETTING_KEY = "token_secret"


def subject_pattern(complaint_prefix: str) -> re.Pattern[str]:
    """``[REC-2026-0001/ABCDEFGHJKLMNPQR]`` as it stands in a subject."""
    return re.compile(
        rf"\[\s*({re.escape(complaint_prefix)}-\d{{4}}-\d{{4,}})\s*/\s*([A-Za-z2-7]{{{TOKEN_LENGTH}}})\s*\]"
    )


class Tokens:
    """Makes and checks command tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str, length: int) -> str:
        # One key, one purpose per MAC: a command token never opens a follow-up page.
        digest = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii")[:length]

    def token(self, number: str, generation: int = 0) -> str:
        """The token of complaint ``number``, of its ``generation`` (renewed by
        ``#nouvellecle``; the first one is the token complaints always had)."""
        value = number if not generation else f"{number}#{generation}"
        return self._mac("command", value, TOKEN_LENGTH)

    def sign(self, purpose: str, value: str) -> str:
        """A signature of ``value`` for ``purpose`` (a form link's reference, a CSRF token):
        130 bits, base32, nobody can make one without the secret."""
        return self._mac(purpose, value, SIGNATURE_LENGTH).lower()

    def verify(self, purpose: str, value: str, signature: str) -> bool:
        """Whether ``signature`` is :meth:`sign`'s for ``value`` (constant time).

        A signature with other than ASCII in it is no signature of ours (and
        ``compare_digest`` refuses to compare such text: it would raise)."""
        if not signature.isascii():
            return False
        return hmac.compare_digest(self.sign(purpose, value), signature.lower())

    def follow_up(self, number: str) -> str:
        """The follow-up token of complaint ``number``: ``REC-2026-0001.<signature>``."""
        return f"{number}.{self.sign('suivi', number)}"

    def follow_up_number(self, token: str) -> str | None:
        """The complaint a follow-up token opens, or ``None`` if it is not one of ours."""
        number, _, signature = token.rpartition(".")
        return number if number and self.verify("suivi", number, signature) else None

    def check(self, number: str, token: str, generation: int = 0) -> bool:
        """Whether ``token`` is the token of ``number`` in its ``generation``
        (constant-time comparison): a renewed complaint's earlier tokens are not."""
        if not token.isascii():
            return False
        return hmac.compare_digest(self.token(number, generation), token.upper())

    def tag(self, number: str, generation: int = 0) -> str:
        """The subject tag: ``[REC-2026-0001/TOKEN]``."""
        return f"[{number}/{self.token(number, generation)}]"


def load_tokens(configured: Secret, factory: sessionmaker[Session]) -> Tokens:
    """Tokens with the configured secret, else with one generated once and stored."""
    if configured:
        return Tokens(configured.reveal().encode("utf-8"))
    with factory() as session, session.begin():
        row = session.get(Setting, SETTING_KEY)
        if row is None:
            row = Setting(key=SETTING_KEY, value=secrets.token_urlsafe(32))
            session.add(row)
        value = row.value
    return Tokens(value.encode("utf-8"))
