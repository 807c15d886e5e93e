"""Connection settings of the mail providers French training organisations use.

See ``docs/providers.md`` for the details (authentication, folders, sub-addresses).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """IMAP and SMTP endpoints of one provider."""

    name: str
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    note: str = ""
    oauth2: str = ""  # the [oauth2] provider its mailboxes need, if passwords are refused


PROVIDERS: dict[str, Provider] = {
    "microsoft365": Provider("Microsoft 365", "outlook.office365.com", 993, "ssl",
                             "smtp.office365.com", 587, "starttls",
                             "les mots de passe sont refusés : une application doit être "
                             "enregistrée pour OAuth2",
                             oauth2="microsoft"),
    "google": Provider("Google Workspace / Gmail", "imap.gmail.com", 993, "ssl",
                       "smtp.gmail.com", 465, "ssl",
                       "utilisez un mot de passe d'application (validation en deux étapes)"),
    "ovh": Provider("OVHcloud (MX Plan, Email Pro)", "ssl0.ovh.net", 993, "ssl",
                    "ssl0.ovh.net", 465, "ssl"),
    "ionos": Provider("IONOS", "imap.ionos.fr", 993, "ssl", "smtp.ionos.fr", 465, "ssl"),
    "gandi": Provider("Gandi", "mail.gandi.net", 993, "ssl", "mail.gandi.net", 465, "ssl"),
    "infomaniak": Provider("Infomaniak", "mail.infomaniak.com", 993, "ssl",
                           "mail.infomaniak.com", 465, "ssl"),
    # «other» is still understood (init's answer before 2026-12).
    "autre": Provider("Serveur propre (Dovecot, Postfix…)", "", 993, "ssl", "", 587, "starttls"),
}
