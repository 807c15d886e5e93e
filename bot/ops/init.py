"""``reclambot init``: a few questions, and a commented ``config.toml`` from the example."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import ImapConfig, Secret, package_data_dir
from bot.config.providers import PROVIDERS, Provider
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.ops.check import Servers

Ask = Callable[[str], str]
#: Reads the recent ``Authentication-Results`` of the mailbox ``init`` has just been told
#: about (``None``: not looked at, e.g. no password given).
Probe = Callable[[ImapConfig], "Servers | None"]


def _example() -> str:
    here = package_data_dir("rules").parent
    for candidate in (here / "config.example.toml", here.parent / "config.example.toml"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    from importlib.resources import files

    return files("bot").joinpath("config.example.toml").read_text(encoding="utf-8")


def _set(text: str, section: str, key: str, value: object) -> str:
    """Replace ``key = ...`` inside ``[section]`` of the example, keeping every comment."""
    # JSON strings and arrays are valid TOML, quotes and backslashes escaped.
    rendered = (json.dumps(value, ensure_ascii=False) if isinstance(value, str | list)
                else str(value).lower() if isinstance(value, bool) else str(value))
    header = re.search(rf"(?m)^\[{re.escape(section)}\]\s*$", text)
    if header is None:
        raise ConfigError(section, "section not found in config.example.toml")
    following = re.compile(r"(?m)^\[").search(text, header.end())
    end = following.start() if following else len(text)
    body, count = re.subn(rf"(?m)^{re.escape(key)} = [^\n]*", lambda _: f"{key} = {rendered}",
                          text[header.end():end], count=1)
    if not count:
        raise ConfigError(f"{section}.{key}", "not found in config.example.toml")
    return text[:header.end()] + body + text[end:]


def _enable(text: str, section: str, keys: tuple[str, ...]) -> str:
    """Uncomment the example's ``# [section]`` and its ``# key = ...`` lines for ``keys``."""
    start = text.find(f"# [{section}]\n")
    if start < 0:
        raise ConfigError(section, "section not found in config.example.toml")
    end = text.find("\n\n", start)
    block = text[start:end].replace(f"# [{section}]", f"[{section}]", 1)
    for key in keys:
        block = re.sub(rf"(?m)^# ({re.escape(key)} = )", r"\1", block, count=1)
    return text[:start] + block + text[end:]


def _comment(text: str, section: str, key: str) -> str:
    """Comment out ``key = ...`` of ``[section]`` (after ``_set`` has checked it is there)."""
    marker = "@@reclambot-comment@@"
    text = _set(text, section, key, marker)
    return text.replace(f'{key} = "{marker}"', f"# {key} = (not used with auth = \"oauth2\")")


def _addresses(answer: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;\s]+", answer) if part.strip()]


def _question(ask: Ask, prompt: str, default: str = "", check: Callable[[str], bool] = bool,
              hint: str = "une réponse est nécessaire") -> str:
    """Ask until ``check`` accepts the answer, saying what is expected after a wrong one."""
    while True:
        answer = ask(f"{prompt}{f' [{default}]' if default else ''} : ").strip() or default
        if check(answer):
            return answer
        print(f"  → {hint}")


def _authentication(text: str, ask: Ask, servers: Servers | None) -> str:
    """Require the authentication of commands by the server that vouches for the senders
    of the mailbox's recent messages, if she agrees (and one does)."""
    server = servers.proposed() if servers is not None else None
    if server is None:
        if servers is not None:
            print("  → aucun message récent ne porte d'en-tête Authentication-Results nommant "
                  "son serveur : les commandes restent reconnues à l'adresse et à la clé "
                  "(reclambot check le redira)")
        return text
    answer = _question(
        ask, f"Les messages reçus sont authentifiés par « {server} » : n'accepter que les "
             "commandes de la direction qu'il authentifie (oui/non)", "oui",
        check=lambda a: a.lower() in ("oui", "non", "o", "n"), hint="répondez oui ou non")
    if answer.lower() not in ("oui", "o"):
        return text
    example = '# authserv_id = "mx.example.fr"'
    if example not in text:
        raise ConfigError("security.authserv_id", "not found in config.example.toml")
    text = _set(text, "security", "require_authentication_results", True)
    return text.replace(example, f"authserv_id = {json.dumps(server, ensure_ascii=False)}", 1)


def write_config(path: Path, ask: Ask, probe: Probe | None = None) -> tuple[Path, Provider]:
    """Ask the questions and write ``path`` (never over an existing file); the mail provider.

    With ``probe`` (and a mailbox that takes a password), the mailbox's recent messages
    are read to propose requiring the ``Authentication-Results`` of its server.
    """
    if path.exists():
        raise ConfigError("", f"{path} existe déjà : supprimez-le ou choisissez un autre --config")
    email = lambda a: bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a))  # noqa: E731
    name = _question(ask, "Nom de l'organisme de formation")
    expected = "une adresse e-mail est attendue (par exemple reclamations@organisme.fr)"
    bot_address = _question(ask, "Adresse de la boîte des réclamations", check=email,
                            hint=expected)
    director = _question(ask, "Nom de la directrice ou du directeur des formations")
    director_address = _question(ask, "Son adresse e-mail", check=email, hint=expected)
    several = lambda a: all(email(x) for x in _addresses(a))  # noqa: E731
    staff = _addresses(_question(
        ask, "Adresses de l'équipe qui vous transmettent des réclamations reçues "
             "(formateurs, secrétariat ; séparées par des virgules, vide si aucune)",
        check=lambda a: not a or several(a),
        hint="des adresses e-mail séparées par des virgules sont attendues, ou rien"))
    link = lambda a: a.startswith(("http://", "https://"))  # noqa: E731
    form_url = _question(ask, "Lien du formulaire « Réclamation » de votre site (vide : "
                              "reclambot le sert lui-même)", check=lambda a: not a or link(a),
                         hint="un lien commençant par https:// est attendu, ou rien")
    public_url = "" if form_url else _question(
        ask, "Adresse publique du formulaire servi par reclambot (https://…)", check=link,
        hint="une adresse commençant par https:// est attendue (docs/web.md)")
    # Only a website's form plugin sends from an address of its own.
    form_sender = "" if not form_url else _question(
        ask, "Adresse d'envoi du formulaire du site (vide si aucune)",
        check=lambda a: not a or email(a), hint=expected)
    phone = _question(ask, "Téléphone où joindre une personne, imprimé sous chaque courriel "
                           "(vide si aucun)", check=lambda a: True)
    mediator = _question(
        ask, "Votre médiateur de la consommation (nommé aux consommateurs après un refus) "
             "est-il AME CONSO ? (oui/non)", "oui",
        check=lambda a: a.lower() in ("oui", "non", "o", "n"), hint="répondez oui ou non")
    mediation: tuple[tuple[str, str], ...] = ()
    if mediator.lower() in ("non", "n"):
        mediator_name = _question(ask, "Nom du médiateur")
        mediator_site = _question(ask, "Son site (https://…)", check=link,
                                  hint="un lien commençant par https:// est attendu")
        mediator_form = _question(ask, "Le lien de son formulaire de saisine", mediator_site,
                                  check=link, hint="un lien commençant par https:// est attendu")
        mediator_address = _question(ask, "Son adresse postale")
        mediation = (("name", mediator_name), ("website", mediator_site),
                     ("form_url", mediator_form), ("address", mediator_address))
    choices = ", ".join(PROVIDERS)
    provider_key = _question(ask, f"Messagerie ({choices})", "autre",
                             check=lambda a: a.lower() in PROVIDERS or a.lower() == "other",
                             hint=f"répondez par l'un de : {choices}")
    provider = PROVIDERS["autre" if provider_key.lower() == "other" else provider_key.lower()]
    imap_host = provider.imap_host or _question(ask, "Serveur IMAP")
    smtp_host = provider.smtp_host or _question(ask, "Serveur SMTP")

    text = _example()
    if provider.oauth2:
        client_id = _question(ask, "Identifiant (client ID) de l'application enregistrée "
                                   "pour reclambot (docs/providers.md)")
        tenant = _question(ask, "Annuaire (tenant) Microsoft", bot_address.split("@")[-1])
        text = _enable(text, "oauth2", ("provider", "client_id", "tenant", "token_file"))
        for section, key, answer in (("oauth2", "provider", provider.oauth2),
                                     ("oauth2", "client_id", client_id),
                                     ("oauth2", "tenant", tenant),
                                     ("imap", "auth", "oauth2"), ("smtp", "auth", "oauth2")):
            text = _set(text, section, key, answer)
        text = _comment(_comment(text, "imap", "password_env"), "smtp", "password_env")
    settings: tuple[tuple[str, str, object], ...] = (
        ("organisation", "name", name),
        ("organisation", "bot_address", bot_address),
        ("organisation", "director_name", director),
        ("organisation", "director_addresses", [director_address]),
        ("organisation", "staff_addresses", staff),
        ("organisation", "form_url", form_url),
        ("web", "public_url", public_url.rstrip("/")),
        ("organisation", "form_senders", [form_sender] if form_sender else []),
        ("organisation", "contact", f"{director_address} ou {phone}" if phone
         else director_address),
        *(("mediation", key, value) for key, value in mediation),
        ("imap", "host", imap_host),
        ("imap", "port", provider.imap_port),
        ("imap", "security", provider.imap_security),
        ("imap", "username", bot_address),
        ("smtp", "host", smtp_host),
        ("smtp", "port", provider.smtp_port),
        ("smtp", "security", provider.smtp_security),
        ("smtp", "username", bot_address),
    )
    for section, key, value in settings:
        text = _set(text, section, key, value)
    if probe is not None and not provider.oauth2:
        imap = ImapConfig(host=imap_host, port=provider.imap_port,
                          security=provider.imap_security, username=bot_address,
                          password=Secret(""))
        text = _authentication(text, ask, probe(imap))
    path.write_text(text, encoding="utf-8")
    return path, provider
