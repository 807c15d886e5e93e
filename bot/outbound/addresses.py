"""Where an email goes: an address as the mail system can carry it (RFC 5321, 6531).

A complainant may write ``josé@exemple.fr`` or ``jeanne@exémple.fr``. The register keeps
the address as she wrote it, normalised (NFC, the domain's Unicode form). What the
envelope and the ``To`` header carry is, where it can be, plain ASCII: the domain as its
A-label (``xn--exmple-cva.fr``, IDNA 2008 with the ``idna`` package, which
email-validator already uses), which every server accepts. A local part with accents
can only travel over SMTPUTF8: the sink asks the server for it, and refuses the email
clearly where the server does not offer it.
"""

from __future__ import annotations


def deliverable(address: str) -> str:
    """``address`` with its domain as an A-label when that makes it ASCII; else as it is
    (then only SMTPUTF8 carries it)."""
    if address.isascii() or "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        import idna

        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            return address  # no A-label: the server will say, and the refusal is clear
    return f"{local}@{domain}"

