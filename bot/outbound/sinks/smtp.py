"""SMTP sink with aiosmtplib: one connection reused for a whole pass over the outbox."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bot.config import ServerConfig
from bot.errors import DeliveryRefused, SinkError

log = logging.getLogger(__name__)


class SmtpConnection:
    """An open SMTP session driven from synchronous code through a private event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        self.loop = loop
        self.client = client

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> None:
        import aiosmtplib

        options: list[str] = []
        if not all(address.isascii() for address in (envelope_from, *recipients)):
            # An address with accents (RFC 6531) travels only where the server says so;
            # without a login, nothing has asked the server what it offers yet.
            if self.client.is_ehlo_or_helo_needed:
                try:
                    self.loop.run_until_complete(self.client.ehlo())
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    raise SinkError(f"SMTP error: {exc}") from exc
            if not self.client.supports_extension("smtputf8"):
                accented = next(a for a in (envelope_from, *recipients) if not a.isascii())
                raise DeliveryRefused(f"l'adresse {accented} a des lettres accentuées avant "
                                      "son @ et le serveur SMTP n'offre pas SMTPUTF8 : "
                                      "elle ne peut pas être écrite par ce serveur")
            options.append("SMTPUTF8")
        try:
            errors, _ = self.loop.run_until_complete(
                self.client.sendmail(envelope_from, list(recipients), raw,
                                     mail_options=options)
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [getattr(r, "code", 0) for r in exc.recipients]
            if all(500 <= c < 600 for c in codes):
                raise DeliveryRefused(f"SMTP refused every recipient: {exc}") from exc
            raise SinkError(f"SMTP refused recipients temporarily: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise DeliveryRefused(f"SMTP {exc.code}: {exc.message}") from exc
            raise SinkError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SinkError(f"SMTP error: {exc}") from exc
        if errors:
            # Some recipients were refused: keep the email as sent to the others.
            refused = ", ".join(f"{addr} ({resp.code})" for addr, resp in errors.items())
            raise DeliveryRefused(f"SMTP refused some recipients: {refused}")


class SmtpSink:
    """Sink for the SMTP server of ``[smtp]``."""

    def __init__(self, server: ServerConfig) -> None:
        self.server = server

    async def _login(self, client: Any) -> None:
        import aiosmtplib

        server = self.server
        if server.oauth2 is None:
            await client.login(server.username, server.password.reveal())
            return
        from bot.config.oauth2 import AccessTokens

        tokens = AccessTokens(server.oauth2)
        try:
            await client.auth_xoauth2(server.username, tokens.get())
        except aiosmtplib.SMTPAuthenticationError:
            # Revoked or expired early: one new token, then the refusal stands.
            await client.auth_xoauth2(server.username, tokens.get(renew=True))

    @contextmanager
    def connect(self) -> Iterator[SmtpConnection]:
        import aiosmtplib

        server = self.server
        loop = asyncio.new_event_loop()
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            timeout=server.timeout,
            use_tls=server.security == "ssl",
            start_tls=server.security == "starttls",
            tls_context=server.tls_context(),
            local_hostname=_local_hostname(),
        )
        if server.security == "none":
            log.warning("SMTP to %s without TLS", server.host)
        try:
            loop.run_until_complete(client.connect())
            if server.username:
                loop.run_until_complete(self._login(client))
        except aiosmtplib.SMTPAuthenticationError as exc:
            loop.close()
            raise SinkError(
                f"SMTP authentication refused for {server.username}: {exc.code}"
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            loop.close()
            raise SinkError(f"cannot connect to SMTP {server.host}:{server.port}: {exc}") from exc
        except BaseException:  # e.g. no OAuth2 token: nothing is sent, the connection goes
            _shut(loop, client, say_goodbye=False)
            raise
        try:
            yield SmtpConnection(loop, client)
        finally:
            _shut(loop, client, say_goodbye=True)


@functools.cache
def _local_hostname() -> str:
    # What EHLO names: looked up once per process, not on every connection (aiosmtplib
    # asks a thread of its own for it each time otherwise).
    return socket.getfqdn()


def _shut(loop: asyncio.AbstractEventLoop, client: Any, say_goodbye: bool) -> None:
    """QUIT if asked, then close the connection for good, and the private loop."""
    transport = client.transport
    try:
        if say_goodbye:
            loop.run_until_complete(client.quit())
    except Exception:  # the server may already have gone: nothing left to tell it
        pass
    client.close()
    if transport is not None:
        # A TLS transport would wait for the server's close_notify over later loop turns
        # that never come once the loop is closed, leaving the socket open: after QUIT
        # nothing more is said, so cut it, and let the loop run once to release it.
        transport.abort()
        loop.run_until_complete(asyncio.sleep(0))
    loop.close()
