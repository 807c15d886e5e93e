"""Configuration: read once from TOML into a frozen, typed object, passed explicitly.

Every key is documented in ``config.example.toml``. A wrong, unknown or missing key
raises :class:`~bot.errors.ConfigError` naming the key (``imap.port``), never a
traceback. Relative paths are relative to the config file. Secrets may come from the
environment (``password_env``) and are wrapped in :class:`Secret` so that they never
show up in a log line or a ``repr``.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

#: ``[storage] dossiers = "database"``: keep dossiers in the register instead of a folder.
DATABASE_DOSSIERS = "database"
#: ``[database] schema``: a PostgreSQL identifier that needs no quoting.
SCHEMA = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {
    "imap": {"ssl": 993, "starttls": 143, "none": 143},
    "smtp": {"ssl": 465, "starttls": 587, "none": 25},
}


class Secret:
    """A password or key: readable with :meth:`reveal`, masked everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that must send it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class OrganisationConfig:
    """Who the bot speaks for, and who may act on the register."""

    name: str
    bot_address: str
    director_name: str
    director_addresses: tuple[str, ...]
    form_url: str
    form_senders: tuple[str, ...] = ()
    contact: str = ""
    #: Her title, as the complainant's emails name it and sign with it.
    director_title: str = "directrice des formations"
    #: Trainers, the secretariat…: whose forwards start the procedure for the person who
    #: wrote the message they pass on (the director's addresses are staff too).
    staff_addresses: tuple[str, ...] = ()

    @property
    def staff(self) -> frozenset[str]:
        """Every address whose forward opens a first contact for someone else."""
        return frozenset((*self.director_addresses, *self.staff_addresses))


OAUTH2_PROVIDERS = ("microsoft", "google", "custom")


@dataclass(frozen=True)
class OAuth2Config:
    """OAuth2 for IMAP and SMTP (SASL XOAUTH2): the application and where its token lives."""

    provider: str
    client_id: str
    token_file: Path
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    tenant: str = "organizations"  # Microsoft: the directory (tenant) id or domain
    token_url: str = ""  # empty: the provider's own endpoint
    scopes: tuple[str, ...] = ()  # empty: what IMAP and SMTP need at this provider
    ca_file: Path | None = None  # verify the token endpoint against this CA


@dataclass(frozen=True)
class ServerConfig:
    """An IMAP or SMTP server connection."""

    host: str
    port: int
    security: str
    username: str
    password: Secret
    timeout: float = 30.0
    ca_file: Path | None = None  # verify the server against this CA instead of the system's
    auth: str = "password"  # or "oauth2": an access token instead of the password
    oauth2: OAuth2Config | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """Certificate-verifying TLS settings, or ``None`` for ``security = "none"``."""
        if self.security == "none":
            return None
        return _tls_context(self.ca_file)


@functools.lru_cache(maxsize=64)
def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    # One per trusted authority for the whole process: a context holds the parsed store
    # of certificates (hundreds of KiB for the system's), and many organisations' servers
    # trust the same one. A context is safe to share between threads and connections.
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


@dataclass(frozen=True)
class ImapConfig(ServerConfig):
    """The watched mailbox."""

    folder: str = "INBOX"


@dataclass(frozen=True)
class FoldersConfig:
    """Where handled messages are filed (created by the bot when missing)."""

    processed: str = "Réclamations/Traitées"
    ignored: str = "Réclamations/Ignorées"
    quarantine: str = "Réclamations/Quarantaine"


@dataclass(frozen=True)
class BotConfig:
    """How the main loop runs."""

    source: str = "imap"
    sink: str = "smtp"
    batch_size: int = 100
    parse_workers: int = 0
    #: A backlog's emails sent by a worker process (:mod:`bot.outbound.sendahead`).
    send_worker: bool = False
    poll_interval: float = 60.0
    idle_timeout: float = 300.0


@dataclass(frozen=True)
class LimitsConfig:
    """What the bot accepts; over a limit, the message stays on the server, the sender is told."""

    max_message_bytes: int = 50 * 1024 * 1024
    max_attachments: int = 30
    max_attachment_bytes: int = 40 * 1024 * 1024


@dataclass(frozen=True)
class MaildirConfig:
    """Local Maildir source and sink (the embedded default used by ``reclambot demo``)."""

    inbox: Path
    outbox: Path


@dataclass(frozen=True)
class MediationConfig:
    """The consumer mediator the organisation belongs to (Code de la consommation L612-1)."""

    name: str = "AME CONSO"
    website: str = "https://www.mediationconso-ame.com"
    form_url: str = "https://www.mediationconso-ame.com"
    address: str = "AME CONSO, 11 Place Dauphine – 75001 PARIS"


@dataclass(frozen=True)
class SecurityConfig:
    """Who may act on the register by email."""

    token_secret: Secret = field(default_factory=lambda: Secret(""))
    require_authentication_results: bool = False
    authserv_id: str = ""


@dataclass(frozen=True)
class WebConfig:
    """``reclambot serve``: the official form and the follow-up pages (``[web]``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: The address complainants see (``https://reclamations.example.fr``); "" when the
    #: organisation serves no form (the form links then point to ``form_url``).
    public_url: str = ""
    #: Proxies whose ``X-Forwarded-For`` and ``-Proto`` headers are believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Submissions accepted from one client address per hour, and for one email per day.
    submissions_per_ip_per_hour: int = 20
    submissions_per_address_per_day: int = 5

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LoggingConfig:
    """How the bot writes its log (to standard error)."""

    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    """The whole configuration, loaded once by :func:`load_config`."""

    path: Path
    organisation: OrganisationConfig
    bot: BotConfig
    folders: FoldersConfig
    database_url: str
    dossiers: Path
    templates_dir: Path
    rules_dir: Path
    imap: ImapConfig | None = None
    smtp: ServerConfig | None = None
    maildir: MaildirConfig | None = None
    mediation: MediationConfig = field(default_factory=MediationConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    database_auto_upgrade: bool = True
    oauth2: OAuth2Config | None = None
    web: WebConfig = field(default_factory=WebConfig)
    #: ``[storage] dossiers = "database"``: dossiers are rows of the register, not a folder.
    dossiers_in_database: bool = False
    #: ``[database] schema``: the PostgreSQL schema holding this register ("": the
    #: connection's default). Many organisations' registers then share one server and,
    #: in one process, one pool of connections and one cache of compiled statements.
    database_schema: str = ""

    def form_link(self) -> str:
        """Where the official form is: the one reclambot serves, else the website's."""
        if self.web.public_url:
            return f"{self.web.public_url}/reclamation"
        return self.organisation.form_url

    @property
    def watched_folder(self) -> str:
        """The watched folder as the config writes it (``INBOX`` for a Maildir)."""
        if self.bot.source == "imap" and self.imap is not None:
            return self.imap.folder
        return "INBOX"


def default_config_path() -> Path:
    """``$RECLAMBOT_CONFIG`` if set, else ``./config.toml``."""
    return Path(os.environ.get("RECLAMBOT_CONFIG", "config.toml"))


def package_data_dir(name: str) -> Path:
    """Locate ``templates`` or ``rules``: inside an installed wheel, or in the source tree."""
    package = Path(__file__).resolve().parents[1]  # bot/, where the wheel puts them
    for candidate in (package / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"paths.{name}", f"aucun dossier « {name} » à côté du paquet")


class _Section:
    """Typed reads of one TOML table, with errors that name ``section.key``."""

    def __init__(self, data: dict[str, Any], name: str, base: Path,
                 read_secrets: bool = True) -> None:
        self.data = data
        self.name = name
        self.base = base
        self.used: set[str] = set()
        #: False for a process that must not hold this section's secrets (the web one).
        self.read_secrets = read_secrets

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(self.key(key), f"manquant (obligatoire){self._typo_of(key)}")
            return None
        return self.data[key]

    def _typo_of(self, key: str) -> str:
        """«; « bot_adress » est-il bot_address ?» when a key written is close to it."""
        import difflib

        near = difflib.get_close_matches(key, [k for k in self.data if k not in self.used],
                                         n=1, cutoff=0.75)
        return f" ; « {near[0]} » est-il une faute de frappe pour {key} ?" if near else ""

    def string(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if not isinstance(value, str):
            raise ConfigError(self.key(key), f"doit être un texte, pas {type(value).__name__}")
        if not value.strip() and default is None:
            raise ConfigError(self.key(key), "ne doit pas être vide")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(self.key(key),
                              f"doit être l'un de {', '.join(choices)}, pas {value!r}")
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        value = self._get(key, default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(key), f"doit être un nombre entier, pas {value!r}")
        if value < minimum:
            raise ConfigError(self.key(key), f"doit valoir au moins {minimum}, pas {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key(key), f"doit être true ou false, pas {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(self.key(key), f"doit être un nombre positif, pas {value!r}")
        return float(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(key), "doit être une liste de textes")
        return tuple(value)

    def addresses(self, key: str, required: bool) -> tuple[str, ...]:
        value = self._get(key, required)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
            raise ConfigError(self.key(key), "doit être une liste d'adresses e-mail")
        if required and not value:
            raise ConfigError(self.key(key), "doit contenir au moins une adresse")
        return tuple(v.strip().lower() for v in value)

    def path(self, key: str, default: str | None = None) -> Path:
        value = Path(self.string(key, default)).expanduser()
        return value if value.is_absolute() else (self.base / value)

    def existing_file(self, key: str) -> Path | None:
        """An optional path that, when given, must name an existing file."""
        self.used.add(key)
        if key not in self.data:
            return None
        path = self.path(key)
        if not path.is_file():
            raise ConfigError(self.key(key), f"fichier {path} introuvable")
        return path

    def secret(self, key: str, required: bool) -> Secret:
        """``key`` itself, or ``key_env`` naming an environment variable that holds it."""
        env_key = f"{key}_env"
        direct = self._get(key, False)
        env_name = self._get(env_key, False)
        if not self.read_secrets:
            return Secret("")
        if direct is not None and env_name is not None:
            raise ConfigError(self.key(key), f"indiquez {key} ou {env_key}, pas les deux")
        if env_name is not None:
            if not isinstance(env_name, str) or not env_name:
                raise ConfigError(self.key(env_key), "doit nommer une variable d'environnement")
            if env_name not in os.environ:
                raise ConfigError(
                    self.key(env_key), f"la variable d'environnement {env_name} n'est pas définie"
                )
            return Secret(os.environ[env_name])
        if direct is None:
            if required:
                raise ConfigError(self.key(key), f"manquant (indiquez {key} ou {env_key})")
            return Secret("")
        if not isinstance(direct, str):
            raise ConfigError(self.key(key), "doit être un texte")
        return Secret(direct)

    def finish(self) -> None:
        """Reject keys nobody read: a typo must not be silently ignored."""
        import difflib

        unknown = sorted(set(self.data) - self.used)
        if unknown:
            near = difflib.get_close_matches(unknown[0], sorted(self.used), n=1, cutoff=0.75)
            hint = f" : vouliez-vous écrire {near[0]} ?" if near else " (voir config.example.toml)"
            raise ConfigError(self.key(unknown[0]), f"clé inconnue{hint}")


def _table(raw: dict[str, Any], name: str, base: Path, required: bool) -> _Section | None:
    data = raw.get(name)
    if data is None:
        if required:
            raise ConfigError(name, "section manquante")
        return None
    if not isinstance(data, dict):
        raise ConfigError(name, "doit être une table ([" + name + "])")
    return _Section(data, name, base)


def _server(section: _Section, kind: str, oauth2: OAuth2Config | None) -> dict[str, Any]:
    security = section.choice("security", SECURITY_MODES, "ssl" if kind == "imap" else "starttls")
    username = section.string("username", "" if kind == "smtp" else None)
    auth = section.choice("auth", ("password", "oauth2"), "password")
    if auth == "oauth2":
        if oauth2 is None:
            raise ConfigError(section.key("auth"), "oauth2 demande une section [oauth2]")
        if not username:
            raise ConfigError(section.key("username"), "obligatoire avec auth = \"oauth2\"")
    ca_file = section.existing_file("ca_file")
    return {
        "ca_file": ca_file,
        "host": section.string("host"),
        "port": section.integer("port", DEFAULT_PORTS[kind][security], minimum=1),
        "security": security,
        "username": username,
        "password": section.secret("password", required=bool(username) and auth == "password"),
        "timeout": section.number("timeout", 30.0),
        "auth": auth,
        "oauth2": oauth2 if auth == "oauth2" else None,
    }


def _oauth2(section: _Section) -> OAuth2Config:
    provider = section.choice("provider", OAUTH2_PROVIDERS, "microsoft")
    token_url = section.string("token_url", "")
    if provider == "custom" and not token_url:
        raise ConfigError(section.key("token_url"), "obligatoire avec provider = \"custom\"")
    if token_url and not token_url.startswith("https://"):
        raise ConfigError(section.key("token_url"), "doit être une adresse https://")
    ca_file = section.existing_file("ca_file")
    scopes = section.data.get("scopes", [])
    section.used.add("scopes")
    if not isinstance(scopes, list) or not all(isinstance(x, str) and x for x in scopes):
        raise ConfigError(section.key("scopes"), "doit être une liste de textes")
    return OAuth2Config(
        provider=provider,
        client_id=section.string("client_id"),
        client_secret=section.secret("client_secret", required=provider == "google"),
        tenant=section.string("tenant", "organizations"),
        token_file=section.path("token_file", "oauth2-token.json"),
        token_url=token_url,
        scopes=tuple(scopes),
        ca_file=ca_file,
    )


def _sqlite_relative(url: str, base: Path) -> str:
    """Make ``sqlite:///relative.db`` relative to the config file, not to the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


KNOWN_SECTIONS = (
    "organisation", "bot", "imap", "smtp", "folders", "maildir",
    "database", "storage", "paths", "security", "mediation", "limits", "logging", "oauth2",
    "web",
)


def parse_config(raw: dict[str, Any], path: Path, mailbox_secrets: bool = True) -> Config:
    """Build a :class:`Config` from an already-parsed TOML document; without
    ``mailbox_secrets``, the ``[imap]`` password is never read (``reclambot serve``)."""
    base = path.resolve().parent
    for name in raw:
        if name not in KNOWN_SECTIONS:
            raise ConfigError(name, "section inconnue (voir config.example.toml)")
    sections: list[_Section] = []

    def table(name: str, required: bool = False) -> _Section | None:
        section = _table(raw, name, base, required)
        if section is not None:
            sections.append(section)
        return section

    org = table("organisation", required=True)
    assert org is not None
    directors = org.addresses("director_addresses", required=True)
    organisation = OrganisationConfig(
        name=org.string("name"),
        bot_address=org.addresses("bot_address", required=True)[0],
        director_name=org.string("director_name"),
        director_addresses=directors,
        form_url=org.string("form_url", ""),
        form_senders=org.addresses("form_senders", required=False),
        contact=org.string("contact", directors[0]),
        director_title=org.string("director_title", "directrice des formations"),
        staff_addresses=org.addresses("staff_addresses", required=False),
    )

    bot_section = table("bot")
    bot = BotConfig()
    if bot_section is not None:
        bot = BotConfig(
            source=bot_section.choice("source", ("imap", "maildir"), "imap"),
            sink=bot_section.choice("sink", ("smtp", "maildir"), "smtp"),
            batch_size=bot_section.integer("batch_size", 100),
            parse_workers=bot_section.integer("parse_workers", 0, minimum=0),
            # By default where a second core can run it: on one core it would only take
            # turns with this process.
            send_worker=bot_section.boolean("send_worker", (os.cpu_count() or 1) >= 2),
            poll_interval=bot_section.number("poll_interval", 60.0),
            idle_timeout=bot_section.number("idle_timeout", 300.0),
        )

    oauth2_section = table("oauth2")
    oauth2 = _oauth2(oauth2_section) if oauth2_section is not None else None

    imap = None
    imap_section = table("imap", required=bot.source == "imap")
    if imap_section is not None:
        imap_section.read_secrets = mailbox_secrets
        imap = ImapConfig(
            **_server(imap_section, "imap", oauth2),
            folder=imap_section.string("folder", "INBOX"),
        )

    smtp = None
    smtp_section = table("smtp", required=bot.sink == "smtp")
    if smtp_section is not None:
        smtp = ServerConfig(**_server(smtp_section, "smtp", oauth2))

    maildir = None
    maildir_section = table("maildir", required="maildir" in (bot.source, bot.sink))
    if maildir_section is not None:
        maildir = MaildirConfig(
            inbox=maildir_section.path("inbox", "maildir/inbox"),
            outbox=maildir_section.path("outbox", "maildir/outbox"),
        )

    folders = FoldersConfig()
    folders_section = table("folders")
    if folders_section is not None:
        folders = FoldersConfig(
            processed=folders_section.string("processed", folders.processed),
            ignored=folders_section.string("ignored", folders.ignored),
            quarantine=folders_section.string("quarantine", folders.quarantine),
        )

    database = table("database")
    url = database.string("url", "sqlite:///reclambot.sqlite3") if database else None
    auto_upgrade = database.boolean("auto_upgrade", True) if database else True
    schema = ""
    if database is not None and "schema" in database.data:
        schema = database.string("schema")
        if not SCHEMA.match(schema):
            raise ConfigError("database.schema", f"« {schema} » : lettres minuscules, chiffres "
                              "et _ (63 au plus), commençant par une lettre")
        if not (url or "").startswith("postgresql"):
            raise ConfigError("database.schema", "seulement avec une base PostgreSQL "
                              "(url = \"postgresql+psycopg://…\")")
    storage = table("storage")
    dossiers_in_database = False
    if storage is not None and storage.data.get("dossiers") == DATABASE_DOSSIERS:
        dossiers_in_database = True
        storage.used.add("dossiers")
        dossiers = base / "dossiers"  # not written to: kept so that the field is a path
    else:
        dossiers = storage.path("dossiers", "dossiers") if storage else base / "dossiers"
    paths = table("paths")
    templates_dir = (
        paths.path("templates", "") if paths and "templates" in paths.data
        else package_data_dir("templates")
    )
    rules_dir = (
        paths.path("rules", "") if paths and "rules" in paths.data else package_data_dir("rules")
    )
    if paths is not None:
        paths.used.update({"templates", "rules"})
    security_section = table("security")
    security = SecurityConfig()
    if security_section is not None:
        security = SecurityConfig(
            token_secret=security_section.secret("token_secret", required=False),
            require_authentication_results=security_section.boolean(
                "require_authentication_results", False
            ),
            authserv_id=security_section.string("authserv_id", ""),
        )
        if security.require_authentication_results and not security.authserv_id:
            raise ConfigError(
                "security.authserv_id",
                "obligatoire avec require_authentication_results = true",
            )
    limits_section = table("limits")
    limits = LimitsConfig()
    if limits_section is not None:
        limits = LimitsConfig(
            max_message_bytes=limits_section.integer("max_message_bytes",
                                                     limits.max_message_bytes),
            max_attachments=limits_section.integer("max_attachments", limits.max_attachments,
                                                   minimum=0),
            max_attachment_bytes=limits_section.integer("max_attachment_bytes",
                                                        limits.max_attachment_bytes),
        )
    logging_section = table("logging")
    logging_config = LoggingConfig()
    if logging_section is not None:
        logging_config = LoggingConfig(
            format=logging_section.choice("format", ("text", "json"), "text"),
            level=logging_section.choice("level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        )
    mediation_section = table("mediation")
    mediation = MediationConfig()
    if mediation_section is not None:
        mediation = MediationConfig(
            name=mediation_section.string("name", mediation.name),
            website=mediation_section.string("website", mediation.website),
            form_url=mediation_section.string("form_url", mediation.form_url),
            address=mediation_section.string("address", mediation.address),
        )

    web = _web(table("web"))
    if not organisation.form_url and not web.public_url:
        # Required, unless reclambot serves the form ([web] public_url, docs/web.md).
        raise ConfigError("organisation.form_url", "manquant (obligatoire)")

    for section in sections:
        section.finish()
    for key, folder in (("paths.templates", templates_dir), ("paths.rules", rules_dir)):
        if not folder.is_dir():
            raise ConfigError(key, f"le dossier {folder} n'existe pas")

    return Config(
        path=path,
        organisation=organisation,
        bot=bot,
        folders=folders,
        database_url=_sqlite_relative(url or "sqlite:///reclambot.sqlite3", base),
        dossiers=dossiers,
        dossiers_in_database=dossiers_in_database,
        database_schema=schema,
        templates_dir=templates_dir,
        rules_dir=rules_dir,
        imap=imap,
        smtp=smtp,
        maildir=maildir,
        mediation=mediation,
        security=security,
        limits=limits,
        logging=logging_config,
        database_auto_upgrade=auto_upgrade,
        oauth2=oauth2,
        web=web,
    )


def _web(section: _Section | None) -> WebConfig:
    if section is None:
        return WebConfig()
    listen = section.string("listen", "127.0.0.1:8080")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(section.key("listen"), "doit être hôte:port (127.0.0.1:8080)")
    public_url = section.string("public_url", "").rstrip("/")
    if public_url and not public_url.startswith(("https://", "http://")):
        raise ConfigError(section.key("public_url"),
                          "doit être une adresse https:// (celle que voient les réclamants)")
    proxies = section.strings("trusted_proxies", ())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(section.key("trusted_proxies"),
                              f"{proxy!r} n'est pas une adresse IP ni un réseau") from None
    return WebConfig(
        host=host.strip("[]"),
        port=int(port),
        public_url=public_url,
        trusted_proxies=proxies,
        submissions_per_ip_per_hour=section.integer("submissions_per_ip_per_hour", 20,
                                                    minimum=1),
        submissions_per_address_per_day=section.integer("submissions_per_address_per_day", 5,
                                                        minimum=1),
    )


#: tomllib's messages, in French (the position, «(at line 7, column 27)», is kept).
_TOML_ERRORS = (
    ("Illegal character '\\n'", "fin de ligne au milieu d'un texte (il manque le guillemet "
                                 "fermant ?)"),
    ("Illegal character", "caractère interdit"),
    ("Invalid value", "valeur invalide (un texte s'écrit entre guillemets)"),
    ("Invalid statement", "ligne illisible (attendu : clé = valeur, ou [section])"),
    ("Expected '=' after a key in a key/value pair", "« = » attendu après la clé"),
    ("Cannot declare", "déclarée deux fois :"),
    ("Cannot overwrite a value", "clé écrite deux fois"),
    ("Unclosed array", "liste non fermée (il manque « ] »)"),
    ("Unterminated string", "texte non fermé (il manque un guillemet)"),
    ("Expected newline or end of document after a statement",
     "fin de ligne attendue après la valeur"),
)


def _toml_error(exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    where = re.search(r"\(at line (\d+), column (\d+)\)", text)
    place = f" (ligne {where.group(1)}, colonne {where.group(2)})" if where else ""
    if where:
        text = text[:where.start()].strip()
    for english, french in _TOML_ERRORS:
        if text.startswith(english):
            rest = text[len(english):].strip()
            return f"{french}{' ' + rest if rest and french.endswith(':') else ''}{place}"
    return f"{text}{place}"


def load_config(path: Path | None = None, mailbox_secrets: bool = True) -> Config:
    """Read and check the configuration file at ``path`` (default: :func:`default_config_path`);
    without ``mailbox_secrets``, the mailbox password is not read (``reclambot serve``)."""
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "", f"fichier {path} introuvable : créez-le avec « reclambot init », ou indiquez "
                "le vôtre par --config ou $RECLAMBOT_CONFIG"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"impossible de lire {path} : {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} n'est pas un TOML valide : {_toml_error(exc)}") from None
    return parse_config(raw, path, mailbox_secrets)
