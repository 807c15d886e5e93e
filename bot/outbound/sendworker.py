"""The send worker: a process of its own that sends the emails its parent claimed, while
the parent goes on handling mail (:mod:`bot.outbound.sendahead`).

Run as ``python -m bot.outbound.sendworker JOURNAL``. It reads on its standard input one
JSON line of settings (the SMTP server; its password travels here, never in the
arguments or the environment), then one frame per email: a JSON line
``{"id": ROW, "from": ..., "to": [...], "size": N}`` followed by the email's N bytes.
Emails go one at a time over one SMTP connection, as the bot sends them itself, and the
journal says what became of each, so that nothing is sent twice whatever stops:

- ``start ROW`` before the first SMTP command of the email;
- ``sent ROW TIME``, ``deferred ROW ERROR`` or ``failed ROW ERROR`` once the server
  answered (TIME in UTC, ERROR as a JSON string);
- ``unsent ROW ERROR`` for an email never handed to the server (it cannot be reached).

After each outcome one byte on its standard output wakes the parent. The connection is
closed after a while without work, and at the end of the input, which ends the worker;
a worker whose parent was killed sends nothing more.
The parent alone touches the register: this process imports neither SQLAlchemy nor the
rules, which keeps it small (about 26 MiB).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import select
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bot.config import Secret, ServerConfig
from bot.core.logs import configure
from bot.errors import DeliveryRefused, SinkError, TransientError
from bot.outbound.sinks import Connection
from bot.outbound.sinks.smtp import SmtpSink

log = logging.getLogger("bot.outbound.sendworker")

#: Seconds without an email after which the SMTP connection is closed (a server closes
#: an idle one after a few minutes; the next email opens another).
IDLE_CLOSE = 10.0


class _Input:
    """Lines and byte counts read from a file descriptor, waiting at most so long."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.ended = False

    def _fill(self, timeout: float | None) -> bool:
        """Read what is there; ``False`` if nothing came within ``timeout``."""
        if self.ended:
            return True
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            self.ended = True
        self.buffer += chunk
        return True

    def line(self, timeout: float | None = None) -> bytes | None:
        """The next line (without its end), ``b""`` at end of input, ``None`` on timeout."""
        while (end := self.buffer.find(b"\n")) < 0:
            if self.ended:
                return b""
            if not self._fill(timeout):
                return None
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line

    def exactly(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer only at end of input)."""
        while len(self.buffer) < size and not self.ended:
            self._fill(None)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def server_settings(server: ServerConfig) -> dict[str, Any]:
    """What the worker needs to reach ``server`` (the password included: for its stdin)."""
    return {"host": server.host, "port": server.port, "security": server.security,
            "username": server.username, "password": server.password.reveal(),
            "timeout": server.timeout,
            "ca_file": str(server.ca_file) if server.ca_file else None}


def _server(settings: dict[str, Any]) -> ServerConfig:
    return ServerConfig(host=settings["host"], port=int(settings["port"]),
                        security=settings["security"], username=settings["username"],
                        password=Secret(settings["password"]),
                        timeout=float(settings["timeout"]),
                        ca_file=Path(settings["ca_file"]) if settings["ca_file"] else None)


class _Worker:
    def __init__(self, journal: int, sink: SmtpSink) -> None:
        self.journal = journal
        self.sink = sink
        self.session: AbstractContextManager[Connection] | None = None
        self.connection: Connection | None = None
        self.unreachable: str | None = None

    def note(self, kind: str, row_id: int, detail: str = "") -> None:
        # One write per line, in append mode: a line is whole or, if the process is
        # killed in the middle, its end is missing (then the parent ignores it).
        os.write(self.journal, f"{kind} {row_id}{' ' + detail if detail else ''}\n".encode())

    def open(self) -> Connection | None:
        if self.connection is None and self.unreachable is None:
            session = self.sink.connect()
            try:
                self.connection = session.__enter__()
                self.session = session
            except SinkError as exc:
                # Not tried again in this pass: the parent sends what is left itself, and
                # the SMTP server's failure is reported as the bot reports it.
                self.unreachable = str(exc)
        return self.connection

    def close(self) -> None:
        if self.session is not None:
            self.session.__exit__(None, None, None)
        self.session = self.connection = None

    def send(self, row_id: int, envelope_from: str, recipients: list[str], raw: bytes) -> None:
        connection = self.open()
        if connection is None:
            self.note("unsent", row_id, json.dumps(self.unreachable or ""))
            return
        self.note("start", row_id)
        try:
            connection.send(envelope_from, recipients, raw)
        except TransientError as exc:
            self.note("deferred", row_id, json.dumps(str(exc)[:2000]))
        except DeliveryRefused as exc:
            self.note("failed", row_id, json.dumps(str(exc)[:2000]))
        else:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            self.note("sent", row_id, now.isoformat())


def main(argv: list[str]) -> int:
    """Send what comes on standard input; see the module's documentation."""
    if len(argv) != 1:
        print("usage: python -m bot.outbound.sendworker JOURNAL", file=sys.stderr)
        return 2
    source = _Input(sys.stdin.fileno())
    first = source.line()
    if not first:
        return 0
    settings = json.loads(first)
    configure(settings.get("log_format", "text"), settings.get("log_level", "WARNING"))
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    journal = os.open(argv[0], flags, 0o600)
    worker = _Worker(journal, SmtpSink(_server(settings["smtp"])))
    parent = os.getppid()
    try:
        while True:
            header = source.line(IDLE_CLOSE if worker.connection is not None else None)
            if header is None:
                worker.close()  # nothing to send for a while
                continue
            if not header:
                break  # the parent is done (or gone)
            frame = json.loads(header)
            raw = source.exactly(int(frame["size"]))
            if len(raw) < int(frame["size"]):
                break  # the parent went away in the middle of an email: it is not sent
            if os.getppid() != parent:
                # The parent was killed: the next run books this journal and sends what
                # it did not say, so nothing more may be sent from here (what is still
                # in the pipe would go out twice).
                break
            worker.send(int(frame["id"]), frame["from"], list(frame["to"]), raw)
            try:
                os.write(sys.stdout.fileno(), b".")
            except BrokenPipeError:
                break  # the parent is gone: the journal tells the next run what was sent
    finally:
        worker.close()
        os.close(journal)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
