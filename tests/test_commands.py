"""Parsing the director's command lines (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.config import package_data_dir
from bot.intake.commandline import CommandError, parse
from bot.procedure.commands import HANDLERS, one_year_after, parse_day, two_months_after
from bot.rulebook import load_rulebook

COMMANDS = load_rulebook(package_data_dir("rules")).commands
WORDS = COMMANDS.words


def test_commands_with_text_up_to_the_next_command() -> None:
    commands = parse(
        "Bonjour,\n#Manquement  Retard d'envoi\n  suite du texte\n#RÉPONSE négative\nLigne 1\n\n"
        "Ligne 2\n#clôturer\n-- \nClaire Durand\n#note jamais lue\n", WORDS
    )
    assert [c.name for c in commands] == ["manquement", "reponse", "cloturer"]
    assert commands[0].text == "Retard d'envoi\n  suite du texte"
    assert commands[1].args == "négative" and commands[1].body == "Ligne 1\n\nLigne 2"
    assert commands[2].text == "" and commands[2].line == 8


def test_every_command_described_has_its_handler_and_every_handler_its_description() -> None:
    """Commands describe themselves in rules/commands.toml (name, aliases, syntax, help);
    the code applies each by its name."""
    assert {c.name for c in COMMANDS.commands} == set(HANDLERS)
    typed = parse("#Répondre positive\n#fin_relation\n#Clore\n", WORDS)
    assert [c.name for c in typed] == ["reponse", "finrelation", "cloturer"]
    assert COMMANDS.read_only == {"aide", "liste"}


def test_unknown_command_names_its_line() -> None:
    with pytest.raises(CommandError) as caught:
        parse("#note ok\n\n# acton 2026-01-01 x\n", WORDS)
    assert caught.value.command is not None and caught.value.command.line == 3
    assert str(caught.value).startswith("ligne 3 « # acton 2026-01-01 x »")


def test_dates() -> None:
    assert parse_day("2026-11-26") == dt.date(2026, 11, 26)
    assert parse_day("26/11/2026") == dt.date(2026, 11, 26)
    assert parse_day("demain") is None
    with pytest.raises(ValueError):
        parse_day("2026-02-30")
    assert one_year_after(dt.date(2028, 2, 29)) == dt.date(2029, 2, 28)
    assert two_months_after(dt.date(2026, 12, 31)) == dt.date(2027, 2, 28)
    assert two_months_after(dt.date(2026, 11, 25)) == dt.date(2027, 1, 25)
