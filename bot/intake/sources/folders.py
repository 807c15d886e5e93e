"""Folder names as the config writes them, and as each IMAP server spells them.

``[folders]`` and ``[imap] folder`` are written with ``/`` between the levels
(``Réclamations/Traitées``), whatever the server. A server has its own personal namespace:
a prefix and a hierarchy delimiter (RFC 2342), ``("" "/")`` on Gmail and Exchange,
``("" ".")`` on a Dovecot with its default Maildir layout, ``("INBOX." ".")`` on Cyrus,
Courier and most hosting panels. :class:`Namespace` maps one onto the other, as
Thunderbird does when it creates a folder.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ConfigError

INBOX = "INBOX"


@dataclass(frozen=True)
class Namespace:
    """The personal namespace of one account: its prefix and hierarchy delimiter."""

    prefix: str = ""
    #: ``None`` for a flat namespace, which has no levels (NIL in the protocol).
    delimiter: str | None = "/"
    #: How it was learned: ``NAMESPACE``, ``LIST`` (servers without NAMESPACE), or ``default``.
    learned_from: str = "default"

    def describe(self) -> str:
        """One line for ``reclambot check``."""
        delimiter = "aucun (à plat)" if self.delimiter is None else f"« {self.delimiter} »"
        return f"préfixe « {self.prefix} », séparateur {delimiter} (appris par {self.learned_from})"

    def _parts(self, name: str, key: str) -> list[str]:
        parts = [part for part in name.split("/") if part]
        if not parts:
            raise ConfigError(key, "un nom de dossier vide")
        delimiter = self.delimiter
        if delimiter is not None and delimiter != "/":
            for part in parts:
                if delimiter in part:
                    raise ConfigError(
                        key, f"« {part} » contient « {delimiter} », le séparateur de niveaux "
                        "de ce serveur : séparez les niveaux par « / », ou choisissez un autre nom")
        return parts

    def server_name(self, name: str, key: str) -> str:
        """The server's spelling of a folder written ``A/B`` in the config at ``key``.

        ``INBOX`` (in any case) is the same folder everywhere and takes no prefix; its
        children hang under it. Raises :class:`ConfigError` naming ``key`` when a level
        of the name contains the server's delimiter, which would split it in two.
        """
        parts = self._parts(name, key)
        if self.delimiter is None:
            return INBOX if name.upper() == INBOX else self.prefix + name
        if parts[0].upper() == INBOX:
            return self.delimiter.join([INBOX, *parts[1:]])
        return self.prefix + self.delimiter.join(parts)

    def spellings(self, name: str, key: str) -> list[str]:
        """Every name under which the folder may already exist, the preferred one first.

        The mapped name; the same without the namespace prefix (created by a client that
        ignored the namespace, or before the server gained one); the name as written in
        the config (created by an earlier version of reclambot on a ``/`` server).
        """
        preferred = self.server_name(name, key)
        found = [preferred]
        if self.prefix and self.delimiter is not None and preferred.startswith(self.prefix):
            found.append(preferred[len(self.prefix):])
        found.append(name)
        return list(dict.fromkeys(found))


def parse_namespace(personal: object) -> Namespace | None:
    """The first personal namespace of a NAMESPACE answer (imapclient's decoded form)."""
    if not personal:
        return None
    try:
        prefix, delimiter = personal[0]  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    if isinstance(prefix, bytes):
        prefix = prefix.decode("utf-8", "replace")
    if isinstance(delimiter, bytes):
        delimiter = delimiter.decode("ascii", "replace")
    return Namespace(prefix=str(prefix or ""), delimiter=delimiter or None,
                     learned_from="NAMESPACE")
