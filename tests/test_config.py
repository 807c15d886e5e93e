"""Configuration: every error names its key; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ImapConfig, Secret, load_config
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
[organisation]
name = "Org"
bot_address = "bot@example.fr"
director_name = "D"
director_addresses = ["d@example.fr"]
form_url = "https://example.fr/f"

[bot]
source = "maildir"
sink = "maildir"

[maildir]
inbox = "in"
outbox = "out"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_complete_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECLAMBOT_IMAP_PASSWORD", "imap-secret")
    monkeypatch.setenv("RECLAMBOT_SMTP_PASSWORD", "smtp-secret")
    config = load_config(ROOT / "config.example.toml")
    assert config.imap is not None and config.imap.password.reveal() == "imap-secret"
    assert config.smtp is not None and config.smtp.port == 587
    assert config.organisation.director_addresses == ("direction@example.fr",)
    assert config.database_url == f"sqlite:///{ROOT / 'reclambot.sqlite3'}"
    assert config.dossiers == ROOT / "dossiers"


def test_minimal_config_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.maildir is not None and config.maildir.inbox == tmp_path / "in"
    assert config.folders.processed == "Réclamations/Traitées"
    assert config.organisation.contact == "d@example.fr"
    assert config.imap is None and config.smtp is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda t: t.replace('name = "Org"\n', ""), "organisation.name"),
        (lambda t: t.replace('director_addresses = ["d@example.fr"]', "director_addresses = []"),
         "organisation.director_addresses"),
        (lambda t: t.replace('source = "maildir"', 'source = "pop3"'), "bot.source"),
        (lambda t: t + "\n[database]\nurl = 12\n", "database.url"),
        (lambda t: t + "\n[database]\nuri = 'sqlite://'\n", "database.uri"),
        (lambda t: t + "\n[databse]\n", "databse"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"'), "imap"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"')
         + '\n[imap]\nhost = "h"\nusername = "u"\n', "imap.password"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"')
         + '\n[imap]\nhost = "h"\nusername = "u"\npassword_env = "NOPE_NOT_SET"\n',
         "imap.password_env"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"')
         + '\n[imap]\nhost = "h"\nport = "993"\nusername = "u"\npassword = "p"\n', "imap.port"),
        (lambda t: t + "\n[paths]\ntemplates = 'nowhere'\n", "paths.templates"),
        (lambda t: t.replace('sink = "maildir"', 'sink = "smtp"')
         + '\n[smtp]\nhost = "h"\nca_file = "missing-ca.pem"\n', "smtp.ca_file"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"')
         + '\n[imap]\nhost = "h"\nusername = "u"\nauth = "oauth2"\n', "imap.auth"),
        (lambda t: t.replace('source = "maildir"', 'source = "imap"')
         + '\n[imap]\nhost = "h"\nusername = "u"\nauth = "token"\n', "imap.auth"),
        (lambda t: t + '\n[oauth2]\nprovider = "custom"\nclient_id = "c"\n', "oauth2.token_url"),
        (lambda t: t + '\n[oauth2]\nprovider = "google"\nclient_id = "c"\n',
         "oauth2.client_secret"),
        (lambda t: t + '\n[oauth2]\nclient_id = "c"\ntoken_url = "http://idp.example/t"\n',
         "oauth2.token_url"),
        (lambda t: t + '\n[oauth2]\nprovider = "yahoo"\nclient_id = "c"\n', "oauth2.provider"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, change, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, change(MINIMAL)))
    assert caught.value.key == key
    assert str(caught.value).startswith(f"config : {key} : ")


def test_oauth2_replaces_the_password(tmp_path: Path) -> None:
    text = MINIMAL.replace('source = "maildir"', 'source = "imap"') + (
        '\n[imap]\nhost = "outlook.office365.com"\nusername = "u@example.fr"\n'
        'auth = "oauth2"\n\n[oauth2]\nclient_id = "app"\ntenant = "example.fr"\n')
    config = load_config(write(tmp_path, text))
    assert config.imap is not None and config.imap.auth == "oauth2"
    assert config.imap.oauth2 == config.oauth2 and not config.imap.password
    assert config.oauth2 is not None and config.oauth2.provider == "microsoft"
    assert config.oauth2.token_file == tmp_path / "oauth2-token.json"


def test_cli_reports_config_error_in_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL.replace('form_url = "https://example.fr/f"\n', ""))
    assert main(["--config", str(path), "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert err == "reclambot : erreur : config : organisation.form_url : manquant (obligatoire)\n"


def test_missing_file_and_bad_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "export", "--format", "csv"]) == 2
    assert "introuvable" in capsys.readouterr().err
    assert main(["--config", str(write(tmp_path, "[organisation\n")), "run", "--once"]) == 2
    assert "n'est pas un TOML valide" in capsys.readouterr().err


def test_a_newcomers_config_mistakes_are_named_in_french(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file points to init; a TOML error is French with its line; a misspelt
    key is named with the one it is close to, missing or unknown."""
    assert main(["--config", str(tmp_path / "none.toml"), "status"]) == 2
    assert "reclambot init" in capsys.readouterr().err
    broken = write(tmp_path, MINIMAL.replace('name = "', 'name = "x\n', 1).replace(
        '"x\nSophroAttitude"', '"x\nSophroAttitude'))
    assert main(["--config", str(broken), "status"]) == 2
    err = capsys.readouterr().err
    assert "il manque le guillemet fermant" in err and "(ligne " in err
    assert "Illegal" not in err and "at line" not in err
    typo = write(tmp_path, MINIMAL.replace("bot_address", "bot_adress"))
    with pytest.raises(ConfigError, match="« bot_adress » est-il une faute de frappe "
                                         "pour bot_address"):
        load_config(typo)
    unknown = write(tmp_path, MINIMAL.replace("[organisation]\n",
                                              '[organisation]\nform_sendrs = []\n'))
    with pytest.raises(ConfigError, match="clé inconnue : vouliez-vous écrire form_senders"):
        load_config(unknown)


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2"


def test_password_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SMTP_PASSWORD", "s3cret")
    text = MINIMAL.replace('sink = "maildir"', 'sink = "smtp"') + (
        '\n[smtp]\nhost = "smtp.example.fr"\nusername = "u"\npassword_env = "MY_SMTP_PASSWORD"\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.smtp is not None
    assert config.smtp.password.reveal() == "s3cret"
    assert "s3cret" not in repr(config)


def test_init_writes_a_commented_working_config(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter([
        "Formations Exemple", "pas-une-adresse", "reclamations@formations.fr",
        "Claire Durand", "direction@formations.fr", "accueil@formations.fr, paul@formations.fr",
        "https://formations.fr/reclamation", "", "01 23 45 67 89", "non", "Médiateur Exemple",
        "https://mediateur.example.fr", "", "1 rue de la Paix, 75002 Paris", "ovh",
    ])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt: "")  # the mailbox is not read
    path = tmp_path / "config.toml"
    assert main(["--config", str(path), "init"]) == 0
    out = capsys.readouterr().out
    assert "reclambot check" in out and "écrit" in out
    assert "→ une adresse e-mail est attendue" in out  # why "pas-une-adresse" was asked again
    monkeypatch.setenv("RECLAMBOT_IMAP_PASSWORD", "x")
    monkeypatch.setenv("RECLAMBOT_SMTP_PASSWORD", "y")
    config = load_config(path)
    assert config.organisation.name == "Formations Exemple"
    assert config.organisation.bot_address == "reclamations@formations.fr"  # asked again
    assert config.organisation.form_senders == ()
    assert config.organisation.staff_addresses == ("accueil@formations.fr", "paul@formations.fr")
    assert config.organisation.contact == "direction@formations.fr ou 01 23 45 67 89"
    assert (config.mediation.name, config.mediation.form_url) == (
        "Médiateur Exemple", "https://mediateur.example.fr")
    assert config.imap is not None and (config.imap.host, config.imap.port) == ("ssl0.ovh.net", 993)
    assert config.smtp is not None and config.smtp.security == "ssl"
    assert "# The director of training" in path.read_text()  # the comments stay
    assert main(["--config", str(path), "init"]) == 2  # never overwrites
    assert "existe déjà" in capsys.readouterr().err


def test_init_for_microsoft_365_sets_up_oauth2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter([
        "Formations Exemple", "reclamations@formations.fr", "Claire Durand",
        "direction@formations.fr", "", "https://formations.fr/reclamation", "", "", "",
        "microsoft365",
        "11111111-2222-3333-4444-555555555555", "",
    ])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.delenv("RECLAMBOT_IMAP_PASSWORD", raising=False)
    path = tmp_path / "config.toml"
    assert main(["--config", str(path), "init"]) == 0
    assert "reclambot auth microsoft" in capsys.readouterr().out
    config = load_config(path)  # no password needed anywhere
    assert config.imap is not None and config.imap.auth == "oauth2"
    assert config.smtp is not None and config.smtp.auth == "oauth2"
    assert config.oauth2 is not None
    assert (config.oauth2.provider, config.oauth2.client_id, config.oauth2.tenant) == (
        "microsoft", "11111111-2222-3333-4444-555555555555", "formations.fr")
    assert config.oauth2.token_file == tmp_path / "oauth2-token.json"


def test_init_without_a_website_form_sets_up_the_served_one(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([
        "Formations Exemple", "reclamations@formations.fr", "Claire Durand",
        "direction@formations.fr", "", "", "formations.fr", "https://reclamations.formations.fr/",
        "", "", "ovh",
    ])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt: "")
    path = tmp_path / "config.toml"
    assert main(["--config", str(path), "init"]) == 0
    monkeypatch.setenv("RECLAMBOT_IMAP_PASSWORD", "x")
    monkeypatch.setenv("RECLAMBOT_SMTP_PASSWORD", "y")
    config = load_config(path)
    assert config.organisation.form_url == ""
    assert config.web.public_url == "https://reclamations.formations.fr"
    assert config.form_link() == "https://reclamations.formations.fr/reclamation"


@pytest.mark.parametrize(("seen", "answer", "required"), [
    ({"mx.ovh.example": 3, "mx.other.example": 1}, "oui", "mx.ovh.example"),
    ({"mx.ovh.example": 3}, "non", ""),
    ({}, None, ""),  # no header names a server: nothing asked
    (None, None, ""),  # the mailbox was not read
])
def test_init_requires_the_authentication_of_commands_by_the_mailboxs_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seen: dict[str, int] | None,
        answer: str | None, required: str) -> None:
    """Commands authenticated by default wherever the server allows it: ``init`` reads
    the mailbox's recent Authentication-Results (the probe; its reading of a real
    mailbox is tested against Dovecot in test_director) and, if she agrees, requires
    those of the server that wrote most of them."""
    from collections import Counter

    from bot.ops.check import Servers
    from bot.ops.init import write_config

    asked: list[str] = []
    answers = iter([
        "Formations Exemple", "reclamations@formations.fr", "Claire Durand",
        "direction@formations.fr", "", "https://formations.fr/reclamation", "", "", "", "ovh",
        *([answer] if answer else []),
    ])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    probed: list[ImapConfig] = []

    def probe(imap: ImapConfig) -> Servers | None:
        probed.append(imap)
        return None if seen is None else Servers(Counter(seen))

    path, _ = write_config(tmp_path / "config.toml", ask, probe)
    assert next(answers, None) is None  # every answer was asked for, no more
    [imap] = probed
    assert (imap.host, imap.username) == ("ssl0.ovh.net", "reclamations@formations.fr")
    assert ("authentifiés par « mx.ovh.example »" in asked[-1]) == bool(answer)
    monkeypatch.setenv("RECLAMBOT_IMAP_PASSWORD", "x")
    monkeypatch.setenv("RECLAMBOT_SMTP_PASSWORD", "y")
    security = load_config(path).security
    assert security.require_authentication_results == bool(required)
    assert security.authserv_id == required


@pytest.mark.parametrize(("web", "key"), [
    ('listen = "8080"', "web.listen"),
    ('public_url = "reclamations.example.fr"', "web.public_url"),
    ('trusted_proxies = ["le proxy"]', "web.trusted_proxies"),
    ("submissions_per_ip_per_hour = 0", "web.submissions_per_ip_per_hour"),
])
def test_web_config_errors_name_the_key(tmp_path: Path, web: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL + f"\n[web]\n{web}\n"))
    assert caught.value.key == key
