"""Was a director's email really sent by the director's domain? ``Authentication-Results``.

Only the header added by our own receiving server (``[security] authserv_id``) is trusted:
anyone can write such a header, but not one that our server did not strip and rewrite.
The header is parsed with authres, never with a regular expression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import SecurityConfig
    from bot.intake.message import InboundMessage


def _aligned(domain: str, from_domain: str) -> bool:
    # Relaxed alignment (RFC 7489): the same domain, or one a parent of the other.
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return (domain == from_domain or from_domain.endswith("." + domain)
            or domain.endswith("." + from_domain))


def authentication_problem(msg: InboundMessage, security: SecurityConfig) -> str | None:
    """``None`` if the message passes, else why it does not (when the check is required)."""
    if not security.require_authentication_results:
        return None
    import authres

    from_domain = msg.from_address.rpartition("@")[2]
    seen_ours = False
    # Headers are listed top to bottom, and our server adds its own on top. Each method
    # is judged by its topmost result from our server: a header further down with the
    # same id (a sender wrote it, and the server did not strip it) never overrides it.
    # Several headers of ours are usual (OpenDKIM and OpenDMARC each add one).
    decided: set[tuple[str, str]] = set()  # (method, signing domain) judged higher up
    for value in msg.headers.get("authentication-results", ()):
        try:
            header = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
        except authres.AuthResError:
            continue
        if (header.authserv_id or "").lower() != security.authserv_id.lower():
            continue
        seen_ours = True
        here: set[tuple[str, str]] = set()
        for result in header.results:
            signing = [p.value.lower() for p in result.properties
                       if p.type == "header" and p.name == "d"]
            key = (result.method, ",".join(signing) if result.method == "dkim" else "")
            here.add(key)
            if key in decided or result.result != "pass":
                continue
            if result.method == "dmarc":
                return None
            if result.method == "dkim" and any(_aligned(d, from_domain) for d in signing):
                return None
        decided |= here
    if not seen_ours:
        return f"pas d'en-tête Authentication-Results de {security.authserv_id}"
    return (f"{security.authserv_id} n'indique ni dmarc=pass ni un dkim=pass aligné")
