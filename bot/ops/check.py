"""``reclambot check``: is this installation able to work? One line per check, with a verdict."""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config, FoldersConfig, ImapConfig
from bot.core.states import EMAIL_KIND_LABELS
from bot.errors import ReclambotError

if TYPE_CHECKING:
    from bot.intake.sources.imap import ImapSource

#: Every kind of email the bot sends (each with its French name): each needs its three
#: templates.
EMAIL_KINDS = tuple(EMAIL_KIND_LABELS)


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'}  {self.name:<10} {self.detail}"


def _templates(config: Config) -> str:
    from jinja2 import TemplateSyntaxError

    from bot.outbound.render import Renderer

    renderer = Renderer(config.templates_dir)
    missing = sorted(set(EMAIL_KINDS) - set(renderer.kinds()))
    if missing:
        raise ReclambotError(f"modèles manquants pour : {', '.join(missing)}")
    for name in renderer.env.list_templates():
        source = (config.templates_dir / name).read_text(encoding="utf-8")
        try:
            renderer.env.parse(source)
        except TemplateSyntaxError as exc:
            raise ReclambotError(f"templates/{name} ligne {exc.lineno} : {exc.message}") from exc
    return f"{len(EMAIL_KINDS)} sortes de courriels dans {config.templates_dir}"


def _rules(config: Config) -> str:
    from bot.rulebook import load_rulebook

    rules = load_rulebook(config.rules_dir)
    versions = ", ".join(v.id for v in rules.form_versions)
    return (f"versions du formulaire {versions} ; réponse sous {rules.answer_working_days} "
            "jours ouvrés")


def _database(config: Config) -> str:
    from bot.store.db import make_engine
    from bot.store.schema import HEAD, ensure_schema, schema_state

    engine = make_engine(config.database_url, config.database_schema)
    where = engine.url.render_as_string(hide_password=True)
    if config.database_schema:
        where += f" [{config.database_schema}]"
    try:
        revision = schema_state(engine)
        if revision is None:
            ensure_schema(engine, schema=config.database_schema)
            return f"{where} : registre créé (schéma {HEAD})"
    except Exception as exc:  # any driver error: reported, not raised
        raise ReclambotError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    if revision != HEAD:
        raise ReclambotError(f"{where} : schéma {revision}, cette version demande {HEAD} : "
                             "lancez `reclambot upgrade`")
    return f"{where} (schéma {HEAD})"


def _dossiers(config: Config) -> str:
    if config.dossiers_in_database:
        # The register's check (just before) opened the database the dossiers live in.
        return "dans la base du registre (table dossier_files)"
    config.dossiers.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=config.dossiers, prefix=".check-"):
        pass
    return f"{config.dossiers} accessible en écriture"


def _fallbacks(config: Config, capabilities: set[str]) -> dict[str, str]:
    """What the bot does when the server lacks each extension it would use."""
    moved = ("donc UID COPY, puis \\Deleted et UID EXPUNGE de l'original" if "UIDPLUS" in
             capabilities else "donc UID COPY ; l'original reste marqué \\Deleted \\Seen "
             "et est ignoré (jamais d'EXPUNGE nu)")
    return {
        "IDLE": f"donc le bot relève toutes les {config.bot.poll_interval:g} s (poll_interval)",
        "MOVE": moved,
        "UIDPLUS": ("(inutile : MOVE est là)" if "MOVE" in capabilities
                    else "donc les originaux classés restent marqués \\Deleted \\Seen, "
                         "et sont ignorés"),
        "CONDSTORE": "(inutile : le bot garde un repère d'UID)",
        "UTF8=ACCEPT": "(inutile : les noms de dossiers voyagent en UTF-7 modifié)",
        "SPECIAL-USE": "(inutile : les dossiers du bot sont nommés dans [folders])",
    }


def _source(config: Config) -> list[CheckResult]:
    """The mailbox: namespace, extensions and the fallback for each missing one, folders.

    The three folders are created when missing (as ``run`` would) and opened, so that an
    OK here means ``run`` can file into them.
    """
    from bot.intake.sources import make_source
    from bot.intake.sources.imap import ImapSource

    source = make_source(config)
    try:
        uidvalidity = source.uidvalidity()
        if not isinstance(source, ImapSource):
            return [CheckResult("mailbox", True, f"{source.mailbox} (UIDVALIDITY {uidvalidity})")]
        results = [
            CheckResult("mailbox", True, f"{source.mailbox} : dossier du serveur "
                                         f"« {source.watched} » (UIDVALIDITY {uidvalidity})"),
            CheckResult("namespace", True, source.namespace.describe()),
        ]
        capabilities = source.capabilities()
        for name, fallback in _fallbacks(config, capabilities).items():
            comma = "," if fallback.startswith("donc ") else ""
            detail = "oui" if name in capabilities else f"absent{comma} {fallback}"
            results.append(CheckResult("imap", True, f"{name} : {detail}"))
        results.extend(_folders(source))
        results.append(_authentication(config, source))
        return results
    finally:
        source.close()


#: How many recent messages of the watched and processed folders ``check`` looks at.
RECENT = 50


@dataclass(frozen=True)
class Servers:
    """Who wrote the ``Authentication-Results`` headers of a mailbox's recent messages."""

    #: How many headers each named server (its ``authserv-id``, lower case) added.
    named: Counter[str]
    #: Headers naming no server (Microsoft 365 begins its own with the results).
    anonymous: int = 0

    def proposed(self) -> str | None:
        """The id to require: the server that wrote most of the headers, if any did."""
        return self.named.most_common(1)[0][0] if self.named else None


def authentication_servers(source: ImapSource, folders: list[str]) -> Servers:
    """Read the ``Authentication-Results`` of the last :data:`RECENT` messages of
    ``folders`` and count the servers that added them (RFC 8601)."""
    import email.parser

    named: Counter[str] = Counter()
    anonymous = 0
    for block in source.recent_headers("Authentication-Results", folders, RECENT):
        for value in email.parser.BytesHeaderParser().parsebytes(block).get_all(
                "Authentication-Results", []):
            # The authserv-id comes first (a version may follow it); a value that begins
            # with a result instead ("spf=pass …") names no server.
            server = str(value).split(";", 1)[0].strip().split(" ", 1)[0]
            if server and "=" not in server:
                named[server.lower()] += 1
            elif server:
                anonymous += 1
    return Servers(named, anonymous)


def _authentication(config: Config, source: ImapSource) -> CheckResult:
    """Whether the director's commands are authenticated, and what the mailbox's recent
    messages say the server could vouch for: its ``authserv_id``, proposed, or, where no
    message carries ``Authentication-Results``, what that leaves open."""
    security = config.security
    folders = [source.watched]
    with contextlib.suppress(ReclambotError):  # a folder the folder check said is broken
        folders.append(source.ensure_folder(config.folders.processed))
    try:
        servers = authentication_servers(source, folders)
    except ReclambotError as exc:
        return CheckResult("commands", False, f"Authentication-Results illisibles : {exc}")
    if security.require_authentication_results:
        seen = (f" ; vu sur {servers.named[security.authserv_id.lower()]} des messages récents"
                if servers.named else " ; aucun message récent ne porte l'en-tête")
        return CheckResult("commands", True, "commandes authentifiées : Authentication-Results "
                                             f"de « {security.authserv_id} » exigé{seen}")
    server = servers.proposed()
    if server:
        return CheckResult("commands", True, (
            f"commandes non authentifiées : les messages reçus portent l'en-tête "
            f"Authentication-Results de « {server} » ; écrivez dans [security] "
            f"require_authentication_results = true et authserv_id = \"{server}\" pour "
            "n'accepter que les commandes que ce serveur authentifie"))
    open_door = ("une commande est reconnue à l'adresse de la direction et à la clé de la "
                 "réclamation seules, donc qui connaît une clé (elle voyage dans chaque "
                 "notification) et écrit sous cette adresse peut agir")
    if servers.anonymous:
        return CheckResult("commands", True, (
            f"commandes non authentifiées : les en-têtes Authentication-Results reçus "
            f"({servers.anonymous}) ne nomment pas le serveur qui les a écrits (Microsoft 365 "
            f"les écrit ainsi), ils ne peuvent donc pas être exigés ; {open_door}"))
    return CheckResult("commands", True, (
        f"commandes non authentifiées : aucun des {RECENT} derniers messages ne porte "
        f"l'en-tête Authentication-Results ; {open_door}"))


def mailbox_authentication(imap: ImapConfig) -> Servers:
    """:func:`authentication_servers` of the watched folder, on a connection of its own
    (``reclambot init``, before any folder of the bot exists)."""
    from bot.intake.sources.imap import ALONE, ImapSource

    source = ImapSource(imap, FoldersConfig(), ALONE)
    try:
        return authentication_servers(source, [source.watched])
    finally:
        source.close()


def _folders(source: ImapSource) -> Iterator[CheckResult]:
    before = source.server_names()
    existing = source.existing_folders()
    for key, name in source.folder_keys().items():
        try:
            server_name = source.ensure_folder(name)
            source.open_folder(server_name)
        except ReclambotError as exc:
            yield CheckResult("folder", False, f"{key} = {name!r} : {exc}")
            continue
        how = "existant" if before[key] in existing else "créé"
        yield CheckResult("folder", True, f"{key} = {name!r} : dossier du serveur "
                                          f"« {server_name} » ({how})")


def _sink(config: Config) -> str:
    from bot.outbound.sinks import make_sink

    with make_sink(config).connect():
        pass
    if config.smtp is not None and config.bot.sink == "smtp":
        return f"{config.smtp.host}:{config.smtp.port} ({config.smtp.security}) nous accepte"
    return "boîte d'envoi Maildir accessible en écriture"


def _oauth2(config: Config) -> str:
    import time

    from bot.config.oauth2 import AccessTokens

    if config.oauth2 is None:
        return "non utilisé (connexion par mot de passe)"
    tokens = AccessTokens(config.oauth2)
    tokens.get()
    saved = tokens.file.load()
    until = time.strftime("%H:%M", time.localtime(float(saved.get("expires_at") or 0)))
    return (f"connecté en tant que {saved.get('username') or '?'} ({config.oauth2.provider}) ; "
            f"jeton d'accès valable jusqu'à {until}")


CHECKS: tuple[tuple[str, Callable[[Config], str | list[CheckResult]]], ...] = (
    ("rules", _rules),
    ("templates", _templates),
    ("database", _database),
    ("dossiers", _dossiers),
    ("oauth2", _oauth2),
    ("mailbox", _source),
    ("sending", _sink),
)


def run_checks(config: Config) -> Iterator[CheckResult]:
    """Run every check, even after a failure, so that all problems show at once."""
    for name, check in CHECKS:
        try:
            found = check(config)
        except (ReclambotError, OSError) as exc:
            yield CheckResult(name, False, str(exc))
            continue
        if isinstance(found, str):
            yield CheckResult(name, True, found)
        else:
            yield from found


def config_result(path: Path | None) -> tuple[Config | None, CheckResult]:
    """Load the configuration, as the first check."""
    from bot.config import default_config_path, load_config

    try:
        config = load_config(path)
    except ReclambotError as exc:
        return None, CheckResult("config", False, str(exc))
    return config, CheckResult("config", True, str(path or default_config_path()))
