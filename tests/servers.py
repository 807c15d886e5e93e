"""Real servers for the tests: a Dovecot IMAP server and an aiosmtpd SMTP server on loopback.

Dovecot runs with its own configuration in a temporary folder, on a free port, with a
static password database: every user name logs in with the password ``secret`` and gets
its own empty mailbox, so each test simply uses a fresh user name.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
import shutil
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
namespace inbox {{
  inbox = yes
  separator = /
}}
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


@dataclass
class Dovecot:
    """A running Dovecot; ``stop()`` shuts it down and removes its folder."""

    root: Path
    port: int  # plain text, STARTTLS offered
    conf: Path
    tls_port: int = 0  # TLS from the start
    ca_file: Path | None = None  # the self-signed certificate, to trust it

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


def start_dovecot(introspection_url: str = "") -> Dovecot:
    """Start Dovecot as root on a free loopback port (needs the dovecot-imapd package).

    Every user logs in with ``DOVECOT_PASSWORD``; with ``introspection_url``, also with an
    OAuth2 token (SASL XOAUTH2/OAUTHBEARER) that this endpoint says is theirs.
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
                                        passdbs=passdbs, mechanisms=mechanisms))
    # The daemon keeps inherited pipes open: its output goes to a file instead.
    with (root / "start.log").open("w") as out:
        result = subprocess.run(["dovecot", "-c", str(conf)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"dovecot did not start: {(root / 'start.log').read_text()}")
    server = Dovecot(root=root, port=port, conf=conf, tls_port=tls_port, ca_file=cert)
    try:
        wait_for_port(port)
        wait_for_port(tls_port)
    except RuntimeError:
        server.stop()
        raise
    return server


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
        body = self.message.get_body(("plain",))
        return body.get_content() if body is not None else ""

    def html(self) -> str:
        body = self.message.get_body(("html",))
        return body.get_content() if body is not None else ""


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
