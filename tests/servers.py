"""Real servers for the tests: IMAP servers (Dovecot, Cyrus) and aiosmtpd SMTP on loopback.

Each IMAP server runs with its own configuration in a temporary folder, on a free port,
and lets every user name log in with the password ``secret`` into its own empty mailbox,
so each test simply uses a fresh user name. Their folder layouts are the packages'
defaults, as a hosting provider leaves them, plus the variants users meet
(:data:`LAYOUTS`): the bot is never given a server arranged to suit it.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

DOVECOT_PASSWORD = "secret"

DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
mail_location = maildir:{root}/mail/%u/Maildir
{passdbs}userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u allow_all_users=yes
}}
{namespace}
{capability}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"""

PASSWORD_PASSDB = """\
passdb {{
  driver = static
  args = password={password}
  mechanisms = plain login
}}
"""

# Dovecot asks the test's introspection endpoint whether an XOAUTH2 token is valid and whose.
OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nobody listens on right now."""
    # All sockets stay bound until every port is chosen, so the kernel never hands out one twice.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Return once something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# Debian's own 10-mail.conf: the INBOX namespace with no separator set, so Dovecot uses
# the Maildir++ layout's '.', and no prefix.
DEBIAN_NAMESPACE = """\
namespace inbox {
  inbox = yes
}
"""

# Dovecot 2.3's post-login capabilities, from which a layout removes what a server lacks.
DOVECOT_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)


@dataclass(frozen=True)
class ImapLayout:
    """One kind of IMAP server the bot must work with, as a test sees it from outside."""

    id: str
    kind: str = "dovecot"  # dovecot | cyrus
    prefix: str = ""
    delimiter: str = "."
    #: Capabilities removed from the server's list (Dovecot's ``imap_capability``).
    lacks: frozenset[str] = frozenset()
    #: The ``namespace`` block of dovecot.conf.
    namespace: str = DEBIAN_NAMESPACE

    def folder(self, name: str) -> str:
        """The server's own name of a folder written ``A/B``, as its users see it."""
        parts = name.split("/")
        if parts[0].upper() == "INBOX":
            return self.delimiter.join(["INBOX", *parts[1:]])
        return self.prefix + self.delimiter.join(parts)

    def capability_setting(self) -> str:
        if not self.lacks:
            return ""
        kept = [c for c in DOVECOT_CAPABILITIES.split() if c not in self.lacks]
        return f"imap_capability = {' '.join(kept)}\n"


LAYOUTS = {layout.id: layout for layout in (
    # Debian's Dovecot as installed: Maildir++, separator '.', no prefix.
    ImapLayout("dovecot"),
    # The layout of cPanel, Plesk and hosting panels (and of Courier): everything under INBOX.
    ImapLayout("dovecot-inbox", prefix="INBOX.", namespace="""\
namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
}
"""),
    # Separator '/', as on Gmail, Exchange and many self-run Dovecots.
    ImapLayout("dovecot-slash", delimiter="/", namespace="""\
namespace inbox {
  inbox = yes
  separator = /
}
"""),
    # No MOVE: COPY, then UID EXPUNGE of the original.
    ImapLayout("dovecot-nomove", lacks=frozenset({"MOVE"})),
    # An old server: no MOVE, UIDPLUS, IDLE nor NAMESPACE.
    ImapLayout("dovecot-minimal", lacks=frozenset({"MOVE", "UIDPLUS", "IDLE", "NAMESPACE"})),
    # Cyrus IMAP with Debian's imapd.conf: namespace INBOX. with '.'.
    ImapLayout("cyrus", kind="cyrus", prefix="INBOX."),
    # Courier-IMAP with Debian's /etc/courier/imapd: INBOX. with '.', no MOVE.
    ImapLayout("courier", kind="courier", prefix="INBOX.", lacks=frozenset({"MOVE"})),
)}
DEFAULT_LAYOUT = "dovecot"


@dataclass
class Dovecot:
    """A running Dovecot; ``stop()`` shuts it down and removes its folder."""

    root: Path
    port: int  # plain text, STARTTLS offered
    conf: Path
    tls_port: int = 0  # TLS from the start
    ca_file: Path | None = None  # the self-signed certificate, to trust it
    layout: ImapLayout = LAYOUTS[DEFAULT_LAYOUT]

    def new_user(self, wanted: str) -> str:
        """A user of its own for one test: any name logs in, into an empty mailbox."""
        return wanted

    def maildir(self, user: str) -> Path:
        """The user's Maildir on disk."""
        return self.root / "mail" / user / "Maildir"

    def set_uidvalidity(self, user: str, value: int) -> None:
        """Give the user's INBOX a new UIDVALIDITY, as a server rebuilding its index does."""
        subprocess.run(["doveadm", "-c", str(self.conf), "mailbox", "update", "-u", user,
                        "--uid-validity", str(value), "INBOX"], check=True, timeout=30,
                       stdin=subprocess.DEVNULL, capture_output=True)

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def self_signed_certificate(folder: Path) -> Path:
    """A certificate for 127.0.0.1 and localhost (``cert.pem``, ``key.pem``), by openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60)
    return folder / "cert.pem"


def start_dovecot(introspection_url: str = "",
                  layout: ImapLayout = LAYOUTS[DEFAULT_LAYOUT], extra: str = "") -> Dovecot:
    """Start Dovecot as root on a free loopback port (needs the dovecot-imapd package).

    Every user logs in with ``DOVECOT_PASSWORD``; with ``introspection_url``, also with an
    OAuth2 token (SASL XOAUTH2/OAUTHBEARER) that this endpoint says is theirs. ``extra``:
    settings added at the end (the benchmark's server for a thousand connected users).
    """
    if shutil.which("dovecot") is None:
        raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="reclambot-dovecot-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    shutil.chown(root / "mail", "dovecot", "dovecot")
    port, tls_port = free_ports(2)
    cert = self_signed_certificate(root / "tls")
    conf = root / "dovecot.conf"
    passdbs = PASSWORD_PASSDB.format(password=DOVECOT_PASSWORD)
    mechanisms = "plain login"
    if introspection_url:
        passdbs += OAUTH2_PASSDB.format(root=root)
        mechanisms += " xoauth2 oauthbearer"
        (root / "dovecot-oauth2.conf.ext").write_text(OAUTH2_CONF.format(url=introspection_url))
    conf.write_text(DOVECOT_CONF.format(root=root, port=port, tls_port=tls_port,
                                        passdbs=passdbs, mechanisms=mechanisms,
                                        namespace=layout.namespace,
                                        capability=layout.capability_setting()) + extra)
    # The daemon keeps inherited pipes open: its output goes to a file instead.
    with (root / "start.log").open("w") as out:
        result = subprocess.run(["dovecot", "-c", str(conf)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"dovecot did not start: {(root / 'start.log').read_text()}")
    server = Dovecot(root=root, port=port, conf=conf, tls_port=tls_port, ca_file=cert,
                     layout=layout)
    try:
        wait_for_port(port)
        wait_for_port(tls_port)
    except RuntimeError:
        server.stop()
        raise
    return server


CYRUS_IMAPD_CONF = """\
# Debian's /etc/imapd.conf, with this server's own paths, and a password check that lets
# every user in (as the static passdb of the Dovecot fixture does).
configdirectory: {root}/lib
proc_path: {root}/run/proc
mboxname_lockpath: {root}/run/lock
defaultpartition: default
partition-default: {root}/spool
altnamespace: no
unixhierarchysep: no
lmtp_downcase_rcpt: yes
allowanonymouslogin: no
autocreate_quota: 0
umask: 077
hashimapspool: true
allowplaintext: yes
sasl_pwcheck_method: alwaystrue
sasl_mech_list: PLAIN LOGIN
lmtpsocket: {root}/run/socket/lmtp
idlesocket: {root}/run/socket/idle
notifysocket: {root}/run/socket/notify
syslog_prefix: cyrus-test
"""

CYRUS_CONF = """\
START {{
  recover cmd="/usr/sbin/cyrus ctl_cyrusdb -r -C {root}/imapd.conf"
}}
SERVICES {{
  imap cmd="{imapd} -C {root}/imapd.conf -U 30" listen="127.0.0.1:{port}" prefork=0 maxchild=50
}}
EVENTS {{
}}
"""

#: Where scripts/test.sh unpacks Debian's cyrus-imapd, which conflicts with dovecot-imapd.
CYRUS_UNPACKED = Path(os.environ.get("RECLAMBOT_TEST_CYRUS", "/opt/reclambot-test/cyrus-imapd"))


def cyrus_imapd() -> Path | None:
    """Cyrus's imapd: installed by its package, or unpacked beside Dovecot by test.sh."""
    for candidate in (Path("/usr/lib/cyrus/bin/imapd"),
                      CYRUS_UNPACKED / "usr/lib/cyrus/bin/imapd"):
        if candidate.exists():
            return candidate
    return None


@dataclass
class Cyrus:
    """A running Cyrus IMAP (``cyrus master``); ``stop()`` shuts it down."""

    root: Path
    port: int
    layout: ImapLayout = LAYOUTS["cyrus"]
    tls_port: int = 0
    ca_file: Path | None = None

    def new_user(self, wanted: str) -> str:
        """Any name logs in (alwaystrue); its INBOX is created at the first login."""
        return wanted

    def set_uidvalidity(self, user: str, value: int) -> None:
        raise NotImplementedError("Cyrus has no command to set a mailbox's UIDVALIDITY")

    def stop(self) -> None:
        pid_file = self.root / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)  # raises once the master is gone (it leaves its pid file)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "master.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_cyrus() -> Cyrus:
    """Start Cyrus IMAP as root on a free loopback port; it runs as the ``cyrus`` user."""
    imapd = cyrus_imapd()
    if imapd is None or shutil.which("cyrus") is None:
        raise RuntimeError("Cyrus IMAP is not installed (scripts/test.sh unpacks it)")
    root = Path(tempfile.mkdtemp(prefix="reclambot-cyrus-"))
    for sub in ("lib", "spool", "run/proc", "run/lock", "run/socket"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    (root / "imapd.conf").write_text(CYRUS_IMAPD_CONF.format(root=root))
    (root / "cyrus.conf").write_text(CYRUS_CONF.format(root=root, imapd=imapd, port=port))
    subprocess.run(["chown", "-R", "cyrus:mail", str(root)], check=True, timeout=30)
    root.chmod(0o755)
    with (root / "master.log").open("w") as out:
        result = subprocess.run(
            ["cyrus", "master", "-C", str(root / "imapd.conf"), "-M", str(root / "cyrus.conf"),
             "-p", str(root / "master.pid"), "-d"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, timeout=30)
    server = Cyrus(root=root, port=port)
    if result.returncode != 0:
        server.stop()
        raise RuntimeError(f"cyrus did not start: {server.log()}")
    try:
        wait_for_port(port)
    except RuntimeError:
        server.stop()
        raise
    return server


#: Where scripts/test.sh unpacks Debian's courier-imap, which conflicts with dovecot-imapd.
COURIER_UNPACKED = Path(os.environ.get("RECLAMBOT_TEST_COURIER",
                                       "/opt/reclambot-test/courier-imap"))
COURIER_USERS = 400

# Courier reads its configuration from /etc/courier, a path built into it: the server runs
# in a mount namespace of its own where this server's folder is bound over /etc/courier,
# so that nothing of the machine's own configuration is read or changed.
COURIER_START = """\
set -e
mount --bind {root}/etc /etc/courier
makeuserdb
/usr/lib/courier/courier-authlib/authdaemond &
for i in $(seq 100); do [ -S {root}/run/socket ] && break; sleep 0.05; done
set -a
. /etc/courier/imapd
exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup \\
    {port} {unpacked}/usr/lib/courier/courier/imaplogin {unpacked}/usr/bin/imapd Maildir
"""


@dataclass
class Courier:
    """A running Courier-IMAP (couriertcpd, imaplogin, authdaemond with a userdb).

    Courier's users come from its userdb, made once at start: :meth:`new_user` hands out
    one of them per test.
    """

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    layout: ImapLayout = LAYOUTS["courier"]
    tls_port: int = 0
    ca_file: Path | None = None
    users: list[str] = field(default_factory=list)

    def new_user(self, _wanted: str) -> str:
        if not self.users:
            raise RuntimeError(f"the Courier fixture has no more users ({COURIER_USERS})")
        return self.users.pop(0)

    def set_uidvalidity(self, user: str, value: int) -> None:
        raise NotImplementedError("Courier has no command to set a folder's UIDVALIDITY")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "courier.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_courier() -> Courier:
    """Start Courier-IMAP as root on a free loopback port (Debian's courier-base and
    courier-authlib-userdb, and courier-imap unpacked by scripts/test.sh)."""
    imaplogin = COURIER_UNPACKED / "usr/lib/courier/courier/imaplogin"
    if not imaplogin.exists() or shutil.which("couriertcpd") is None \
            or shutil.which("makeuserdb") is None:
        raise RuntimeError("Courier-IMAP is not installed (scripts/test.sh unpacks it)")
    root = Path(tempfile.mkdtemp(prefix="reclambot-courier-"))
    root.chmod(0o755)
    etc = root / "etc"
    shutil.copytree("/etc/courier", etc, symlinks=True)
    for name in ("imapd", "imapd-ssl"):
        shutil.copy(COURIER_UNPACKED / "etc/courier" / name, etc / name)
    rc = (etc / "authdaemonrc").read_text()
    rc = "\n".join(
        'authmodulelist="authuserdb"' if line.startswith("authmodulelist=")
        else f"authdaemonvar={root}/run" if line.startswith("authdaemonvar=")
        else line for line in rc.splitlines()) + "\n"
    (etc / "authdaemonrc").write_text(rc)
    (root / "run").mkdir()
    hashed = subprocess.run(["openssl", "passwd", "-6", DOVECOT_PASSWORD], check=True,
                            capture_output=True, text=True, timeout=30).stdout.strip()
    users = [f"courier{i:03}" for i in range(COURIER_USERS)]
    owner = pwd.getpwnam("courier")  # its ids depend on the order packages were installed
    lines = []
    for user in users:
        home = root / "mail" / user
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True)
        lines.append(f"{user}\tuid={owner.pw_uid}|gid={owner.pw_gid}|home={home}|mail={home}/Maildir"
                     f"|systempw={hashed}")
    (etc / "userdb").write_text("\n".join(lines) + "\n")
    (etc / "userdb").chmod(0o600)
    subprocess.run(["chown", "-R", "courier:courier", str(root / "mail")], check=True,
                   timeout=60)
    port = free_port()
    (root / "start.sh").write_text(COURIER_START.format(root=root, port=port,
                                                        unpacked=COURIER_UNPACKED))
    with (root / "courier.log").open("w") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh",
             str(root / "start.sh")],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Courier(root=root, port=port, process=process, users=users)
    try:
        wait_for_port(port)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"courier did not start: {server.log()}") from None
    return server


ImapServer = Dovecot | Cyrus | Courier


def start_imap(layout: ImapLayout) -> ImapServer:
    """A server of this layout."""
    if layout.kind == "cyrus":
        return start_cyrus()
    if layout.kind == "courier":
        return start_courier()
    return start_dovecot(layout=layout)


@dataclass
class Captured:
    """One email received by the test SMTP server."""

    envelope_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        """The plain text as a reader's client shows it: a flowed part joined again."""
        from bot.testing.memory import plain_text

        return plain_text(self.message)

    def html(self) -> str:
        """The HTML part, non-breaking spaces as spaces (the typography has its test)."""
        body = self.message.get_body(("html",))
        return body.get_content().replace("\u00a0", " ") if body is not None else ""


@dataclass
class SmtpCapture:
    """aiosmtpd handler keeping every email, and optionally answering with a failure code."""

    received: list[Captured] = field(default_factory=list)
    fail_with: str | None = None
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.fail_with:
            return self.fail_with
        with self.lock:
            self.received.append(Captured(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Captured]:
        return [c for c in self.received if address in c.recipients]


@dataclass
class XOAuth2SmtpCapture(SmtpCapture):
    """Keeps every email, but only from clients that logged in with a valid XOAUTH2 token."""

    user_of: Callable[[str], str | None] = lambda _token: None  # the introspection
    logins: list[str] = field(default_factory=list)

    async def auth_XOAUTH2(self, server, args):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        blob = args[1] if len(args) > 1 else await server.challenge_auth("")
        if not isinstance(blob, str | bytes):
            return AuthResult(success=False, handled=False)
        text = base64.b64decode(blob).decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if user and self.user_of(token) == user:
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


class SmtpServer:
    """An aiosmtpd controller on a free loopback port."""

    def __init__(self, handler: SmtpCapture | None = None, **options: Any) -> None:
        self.handler = handler or SmtpCapture()
        self.options = options
        self.port = free_port()
        self.controller = None
        self.start()

    def start(self) -> None:
        """(Re)start on the same port, with the same handler."""
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     decode_data=False, **self.options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster; ``database()`` makes a fresh database per test."""

    root: Path
    port: int
    bin_dir: Path
    counter: int = 0

    def url(self, name: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def database(self) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import psycopg

        self.counter += 1
        name = f"reclambot_{os.getpid()}_{self.counter}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "stop",
                      "-m", "immediate"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres(command: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # initdb and postgres refuse to run as root: run them as the packaged postgres user.
    if is_root():
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=check, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on a free loopback port (needs Debian's postgresql package)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = versions[-1].parent
    root = Path(tempfile.mkdtemp(prefix="reclambot-pg-"))
    root.chmod(0o755)
    if is_root():
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    _as_postgres([str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options,
                  "-l", str(root / "log"), "-w", "start"])
    return Postgres(root=root, port=port, bin_dir=bin_dir)


POSTFIX_MAIN_CF = """\
# Debian's Postfix as an organisation's hosting provider runs it: it takes the bot's
# outgoing mail on SMTP, delivers the organisation's own addresses into the test Dovecot
# (through Dovecot's LDA, as Dovecot's documentation pairs them), relays
# the rest to the remote domain's MX, and writes its own delivery reports when that MX
# refuses a recipient. Only paths, ports and the loopback routes are the test's.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
biff = no
append_dot_mydomain = no
virtual_mailbox_domains = {domain}
virtual_mailbox_maps = regexp:{conf}/mailboxes
virtual_transport = dovecot
dovecot_destination_recipient_limit = 1
alias_maps =
alias_database =
transport_maps = texthash:{conf}/transport
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
bounce_template_file = {conf}/bounce.cf
"""

#: Bounce templates of a provider that writes its reports from an ordinary address, in
#: French, under a subject that says nothing of a failure: only the structure tells.
POSTFIX_PLAIN_BOUNCE = """\
failure_template = <<EOF
Charset: utf-8
From: Service messagerie <messagerie@{domain}>
Subject: Votre message du jour
Postmaster-Subject: Copie postmaster : message non remis

Bonjour,

Nous vous informons que votre courriel n'a pas pu parvenir à l'un de ses destinataires.
Vous le trouverez joint à ce message, avec le détail technique.

Le service messagerie
EOF
"""

#: The domain of the complainants' mail provider, whose MX is an aiosmtpd of the test.
POSTFIX_REMOTE_DOMAIN = "example.net"


@dataclass
class Postfix:
    """A running Postfix; ``stop()`` shuts it down and removes its folder."""

    root: Path
    port: int
    domain: str
    remote: SmtpServer  # the MX of POSTFIX_REMOTE_DOMAIN

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def set_bounce_templates(self, text: str) -> None:
        """Replace the bounce templates ("": Postfix's own) and reload."""
        (self.conf / "bounce.cf").write_text(text.format(domain=self.domain))
        self.command("reload")

    def command(self, *args: str) -> None:
        """Run ``postfix -c <this config> args``."""
        subprocess.run(["postfix", "-c", str(self.conf), *args], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.command("stop")
        self.remote.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_postfix(dovecot: Dovecot, domain: str = "example.fr") -> Postfix:
    """Start Debian's Postfix (as root) on a free loopback port, with its own queue.

    Mail for ``user@domain`` lands in the INBOX of the Dovecot user ``user``; mail for
    POSTFIX_REMOTE_DOMAIN goes to an aiosmtpd MX, whose ``handler.refuse`` the test sets.
    """
    if shutil.which("postfix") is None:
        raise RuntimeError("postfix is not installed (apt-get install postfix)")
    root = Path(tempfile.mkdtemp(prefix="reclambot-postfix-"))
    root.chmod(0o755)
    conf = root / "conf"
    conf.mkdir()
    (root / "queue").mkdir()  # `postfix start` creates the rest, with its owners
    remote = SmtpServer()
    port = free_port()
    (conf / "main.cf").write_text(POSTFIX_MAIN_CF.format(root=root, conf=conf, domain=domain))
    # Debian's master.cf with the SMTP service on the test's port, and no chroot (which
    # would need a copy of /etc inside the queue directory).
    master = _no_chroot(Path("/etc/postfix/master.cf").read_text())
    master = re.sub(r"(?m)^smtp inet ", f"127.0.0.1:{port} inet ", master)
    # Dovecot's log file is root's; the LDA runs as dovecot and writes to Postfix instead.
    master += (
        "dovecot unix - n n - - pipe\n  flags=DRhu user=dovecot:dovecot "
        f"argv=/usr/lib/dovecot/dovecot-lda -c {dovecot.conf} -o log_path=/dev/stderr "
        "-o info_log_path=/dev/stderr -f ${sender} -d ${user}\n")
    (conf / "master.cf").write_text(master)
    # Every local part of the domain is a mailbox, as every user name is one in the fixture.
    (conf / "mailboxes").write_text(f"/@{re.escape(domain)}$/ OK\n")
    (conf / "transport").write_text(f"{POSTFIX_REMOTE_DOMAIN} smtp:[127.0.0.1]:{remote.port}\n")
    (conf / "bounce.cf").write_text("")
    server = Postfix(root=root, port=port, domain=domain, remote=remote)
    try:
        server.command("start")
        wait_for_port(port)
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log = server.log()
        server.stop()
        raise RuntimeError(f"postfix did not start: {detail.decode(errors='replace')}"
                           f"{log}") from exc
    return server


def _no_chroot(master: str) -> str:
    """master.cf with every service's chroot column set to ``n``, fields single-spaced."""
    lines = []
    for line in master.splitlines():
        fields = line.split()
        if len(fields) >= 8 and not line[:1].isspace() and not line.startswith("#"):
            fields[4] = "n"
            line = " ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"
