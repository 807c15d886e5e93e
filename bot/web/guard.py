"""What keeps the web form safe: security headers, a body size limit, CSRF tokens and
rate limits. Nothing here reads the register."""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bot.store.tokens import Tokens

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

#: Sent with every response. No script at all, styles from the server only, no framing,
#: forms posted to the server only, no referrer (a follow-up URL is a key).
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP response."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        headers = dict(SECURITY_HEADERS)
        if https:
            headers["strict-transport-security"] = "max-age=31536000"
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in self.headers if k not in names]]
            await send(message)

        await self.app(scope, receive, with_headers)


class Failsafe:
    """ASGI middleware, outermost: whatever fails in a request is answered with ``page``
    (a French page, status 500) if nothing was answered yet, and logged in one line with
    the error's kind, never a traceback (which could hold what the person posted).

    Starlette answers an error with its own handler, then raises it again for the server
    to log: that is where it stops.
    """

    def __init__(self, app: ASGIApp, page: ASGIApp) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # a request must never end in a bare 500
            log.error("web: %s on %s %s", type(exc).__name__, scope.get("method", "?"),
                      scope.get("path", "?")[:200])
            if not started:
                await self.page(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the request when its body goes over the limit (caught by BodyLimit)."""


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with ``refuse``,
    whether it says its length or not (chunked)."""

    def __init__(self, app: ASGIApp, limit: int, refuse: ASGIApp) -> None:
        self.app = app
        self.limit = limit
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self.refuse(scope, receive, send)
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                if not started and not refused:
                    refused = True
                    await self.refuse(scope, receive, send)
                raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the refusal was the answer: what the app sends after it is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            return  # answered with the refusal already


#: How long a rendered form may be submitted.
CSRF_LIFETIME = 4 * 3600


class Csrf:
    """Tokens that tie a submission to the page the server rendered.

    The page carries ``nonce.issued.submission.signature``; a cookie of the same browser
    carries the nonce. The signature (the command-token secret, purpose ``csrf``) covers
    the submission id, so the id that makes a double submit register once cannot be
    chosen by anyone else either.
    """

    COOKIE = "reclambot_csrf"
    #: Over HTTPS: a cookie of this name is refused by browsers unless it is Secure, for
    #: the whole site and no other domain, so no subdomain or plain-HTTP page can set it.
    SECURE_COOKIE = "__Host-reclambot_csrf"

    def __init__(self, tokens: Tokens, clock: Callable[[], float] = time.time) -> None:
        self.tokens = tokens
        self.clock = clock

    def _nonce(self, cookie: str | None) -> str | None:
        """The nonce of a cookie this server issued (``nonce.signature``), else ``None``:
        a value a page or another site made up is never adopted."""
        nonce, _, signature = (cookie or "").partition(".")
        if len(nonce) != 32 or not nonce.isascii() or not nonce.isalnum() or not signature:
            return None
        return nonce if self.tokens.verify("csrf-cookie", nonce, signature) else None

    def issue(self, cookie: str | None = None) -> tuple[str, str]:
        """(cookie value, form token) for a new page: the nonce of a cookie this server
        issued is kept, so that two open tabs both stay valid."""
        nonce = self._nonce(cookie) or secrets.token_hex(16)
        body = f"{nonce}.{int(self.clock())}.{secrets.token_hex(16)}"
        value = f"{nonce}.{self.tokens.sign('csrf-cookie', nonce)}"
        return value, f"{body}.{self.tokens.sign('csrf', body)}"

    def check(self, cookie: str | None, token: str) -> str | None:
        """The submission id if ``token`` is valid for this browser (``cookie``), else ``None``."""
        parts = token.split(".")
        nonce_of_cookie = self._nonce(cookie)
        if len(parts) != 4 or nonce_of_cookie is None or not token.isascii():
            return None
        nonce, issued, submission, signature = parts
        body = f"{nonce}.{issued}.{submission}"
        if not self.tokens.verify("csrf", body, signature) or not secrets.compare_digest(
                nonce, nonce_of_cookie):
            return None
        if not issued.isdigit() or self.clock() - int(issued) > CSRF_LIFETIME:
            return None
        return submission


class RateLimiter:
    """How many times each key acted within a sliding window, kept in memory.

    One process serves the form; a restart forgets the counts, which only lets a few more
    submissions through. Keys idle for a window are dropped, so memory stays bounded by
    the traffic of one window.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one more action of ``key``; ``False`` if that is over the limit."""
        now = self.clock()
        with self._lock:
            if len(self._hits) > 10_000:
                self._prune(now)
            hits = self._hits.setdefault(key, collections.deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True

    def _prune(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or
                    hits[-1] <= now - self.window]:
            del self._hits[key]
