"""The operator's mistakes, run as she runs them (a subprocess, a terminal's pipes): each
ends in one French line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config

ROOT = Path(__file__).parent.parent


def reclambot(*args: str, stdin: int | None = subprocess.DEVNULL,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, stdin=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": "x", **(env or {})})


def one_french_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("reclambot : erreur : ")
    return line


@pytest.fixture()
def config(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, imap_port=1, imap_user="u", smtp_port=1,
                        database_url=database_url)


def test_init_at_the_end_of_its_input(tmp_path: Path) -> None:
    result = reclambot("--config", str(tmp_path / "config.toml"), "init")
    assert "fin de la saisie" in one_french_line(result)
    assert not (tmp_path / "config.toml").exists()


def test_demo_in_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "fichier"
    blocker.write_text("")
    result = reclambot("demo", "--dir", str(blocker / "demo"))
    assert str(blocker) in one_french_line(result)


def test_an_unknown_dossier(config: Path, tmp_path: Path) -> None:
    result = reclambot("--config", str(config), "dossier", "export", "REC-2026-0999",
                       str(tmp_path / "out"))
    assert "aucun dossier REC-2026-0999" in one_french_line(result)


def test_serve_on_a_busy_port(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path, imap_port=1, imap_user="u", smtp_port=1,
                              database_url=database_url,
                              extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
        result = reclambot("--config", str(config), "serve")
    line = one_french_line(result)
    assert "déjà utilisé" in line and "web.listen" in line
    assert "formulaire :" not in result.stdout  # it never said it was serving


def test_export_into_a_pipe_closed_early(config: Path) -> None:
    """``reclambot export --format csv | head -1``: the reader stops, nothing is said."""
    with subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "export",
                           "--format", "csv"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": "x"}) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        errors = process.stderr.read()
        process.wait(timeout=120)
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_status_reads_the_register_without_the_mailbox_password(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RECLAMBOT_TEST_IMAP_PASSWORD"}
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "RECLAMBOT_TEST_IMAP_PASSWORD" not in result.stderr


#: Words of the English help and argparse errors that a French terminal must not show.
#: (The commands' and options' own names, «erase», «--look-every», are the interface.)
ENGLISH = ("usage:", "error:", "the ", "default", "show this help", "positional arguments",
           "folder", "write ", "watch ", "load ", "required:", "invalid choice", "not a date")


@pytest.mark.parametrize("args", [
    [], ["run"], ["export"], ["report"], ["gdpr"], ["gdpr", "export"], ["dossier", "export"],
    ["demo"], ["quarantine", "retry"], ["form", "export"], ["import"], ["daily"], ["auth"],
])
def test_the_help_speaks_french(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    with pytest.raises(SystemExit) as stopped:
        main([*args, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("utilisation : reclambot")
    assert [word for word in ENGLISH if word in out.lower()] == []


@pytest.mark.parametrize(("args", "expected"), [
    (["report", "--as-of", "hier"], "« hier » n'est pas une date"),
    (["nulle-part"], "choix invalide"),
    (["export"], "arguments obligatoires manquants : --format"),
    (["run", "--bizarre"], "arguments inconnus : --bizarre"),
])
def test_argparse_errors_speak_french_and_exit_2(args: list[str], expected: str) -> None:
    result = reclambot(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr and "reclambot" in result.stderr
    assert [word for word in ENGLISH if word in result.stderr.lower()] == []
