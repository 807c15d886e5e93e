"""The director's command lines: ``#name arguments`` and the text under them, parsed.

Parsed at intake, so that the decision carries the commands and the handler that runs
them (:mod:`bot.procedure.commands`) never reads the email again. Only the new text of a
reply is given here (quoted history stripped). A line that starts with ``#`` starts a
command (case and accents ignored); the lines under it, up to the next command or a
``--`` signature line, are its text. The words known are those of ``rules/commands.toml``
(each command's name and aliases: :attr:`bot.rulebook.CommandsHelp.words`).

:class:`~bot.errors.CommandError` is re-exported here, where commands are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.text import fold
from bot.errors import CommandError

__all__ = ["Command", "CommandError", "parse"]

_COMMAND_LINE = re.compile(r"^\s*#\s*([^\s#]+)\s*(.*)$")
_SIGNATURE = re.compile(r"^-- ?$")


@dataclass(frozen=True)
class Command:
    """One ``#command`` with its arguments and the text under it."""

    name: str
    args: str
    body: str
    line: int
    source: str

    @property
    def text(self) -> str:
        """Arguments and body together: the free text of the command."""
        return "\n".join(part for part in (self.args.strip(), self.body) if part)


def parse(text: str, words: Mapping[str, str]) -> list[Command]:
    """The commands of ``text`` (the reply's new text), ``words`` mapping every word the
    director may type (folded) to its command; an unknown one raises ``CommandError``."""
    commands: list[Command] = []
    current: dict[str, object] | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            # Blank lines around the text go; the indentation of its first line stays.
            text = "\n".join(body).strip("\n").rstrip()
            commands.append(Command(body=text, **current))  # type: ignore[arg-type]

    for number, line in enumerate(text.splitlines(), start=1):
        if _SIGNATURE.match(line):
            break
        match = _COMMAND_LINE.match(line)
        if match:
            close()
            body = []
            word = fold(match.group(1)).replace(" ", "")
            command = {"args": match.group(2).strip(), "line": number, "source": line}
            if word not in words:
                raise CommandError(
                    Command(word, "", "", number, line),
                    f"commande inconnue « #{match.group(1)} » (envoyez #aide pour la liste)",
                )
            current = {"name": words[word], **command}
        elif current is not None:
            body.append(line)
    close()
    return commands
