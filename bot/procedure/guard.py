"""The last guard on what leaves: nothing of the bot's internal mail reaches a complainant.

The reader of replies (:mod:`bot.intake.replies`) takes out what the director's client
quoted, by the clients' known shapes. A client no rule knows, or a quote pasted by hand,
would still bring the notification along: its command key, its summary, the dossier's
path, the help of the commands. So before a command email changes anything, every text
it would record or send is looked at for what only the bot's own internal mail carries;
if one has any, the command email is refused whole and the director is told which lines
of her reply look like a quoted notification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.protocol import OWN_HEADER

if TYPE_CHECKING:
    from bot.app import App

#: The notification's summary draws its labels with dotted leaders («Numéro ....... »).
_LEADERS = re.compile(r"\S\s\.{8,}\s")
#: The words of the footer of the director's emails (``_director_footer.txt``).
_FOOTER = "message automatique de reclambot"
#: A help line shorter than this could be a person's words.
_SHORTEST_HELP = 20


@dataclass(frozen=True)
class _Marks:
    """What only the bot's internal mail carries, for one organisation's rules and
    dossiers: built once per command email, then tried on each of its lines."""

    key: re.Pattern[str]
    dossier: re.Pattern[str]
    help: tuple[str, ...]

    @classmethod
    def of(cls, app: App) -> _Marks:
        prefix = re.escape(app.rulebook.complaint_prefix)
        # A command key as it stands in a subject, a quoted subject or a mailto link.
        key = re.compile(rf"(?i){prefix}-\d{{4}}-\d{{4,}}\s*(/|%2F)\s*[A-Z2-7]{{16}}")
        sample = f"{app.rulebook.complaint_prefix}-0000-0000"
        where = re.escape(app.dossiers.relative(sample).rstrip("/"))
        dossier = re.compile(where.replace(re.escape(sample), rf"{prefix}-\d{{4}}-\d+"))
        commands = app.rulebook.commands
        texts = [commands.intro, commands.outro]
        for command in commands.commands:
            texts.append(command.help)
            texts.extend(line for line in command.syntax.splitlines()
                         if "<" in line or "|" in line)
        return cls(key, dossier, tuple(t.casefold() for t in texts
                                       if len(t) >= _SHORTEST_HELP))

    def of_line(self, line: str) -> str | None:
        """What of the bot's internal mail ``line`` carries, in French, or ``None``."""
        folded = line.casefold()
        if self.key.search(line):
            return "une clé de commande"
        if OWN_HEADER.casefold() in folded or _FOOTER in folded:
            return "une marque des messages du bot"
        if self.dossier.search(line):
            return "le chemin d'un dossier"
        if _LEADERS.search(line):
            return "le résumé d'une notification"
        if any(text in folded for text in self.help):
            return "l'aide des commandes"
        return None


def quoted_lines(text: str, app: App, limit: int = 3) -> list[tuple[str, str]]:
    """The lines of ``text`` that carry an internal mark, with the mark (``limit`` at
    most)."""
    marks = _Marks.of(app)
    found = []
    for line in text.splitlines():
        mark = marks.of_line(line)
        if mark is not None:
            found.append((line.strip(), mark))
            if len(found) >= limit:
                break
    return found
