"""One bot at a time on a database: a lease row in the database itself.

Works the same on SQLite and PostgreSQL. A second ``reclambot run`` on the same register
exits with a clear message instead of handling the same mail twice. A lease is taken over
when its holder stopped renewing it (another machine that died), or at once when the
holder is a process of this machine that no longer exists (killed, crashed), or when both
are processes of a fleet sharing a coordinator (``run --coordinator``): a process of the
fleet runs an organisation only while it holds the organisation's lock in the
coordinator, so the one that was just given that lock knows the lease's holder dead, or
cut off from the coordinator and stopping (its next renewal fails in any case).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, update

from bot.core.clock import datetime_fr
from bot.errors import LockError
from bot.store.models import Lock

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)
LEASE = dt.timedelta(minutes=5)
NAME = "reclambot"
#: Before the holder's name: a process of a fleet with a coordinator.
COORDINATED = "flotte@"


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(holder: str) -> bool:
    host, _, pid = holder.removeprefix(COORDINATED).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and only waits for its parent to collect it (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc here: taken as alive, the lease lapses in its time
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class ProcessLock:
    """The lease of this process; a context manager that releases it on exit."""

    def __init__(self, app: App, coordinated: bool = False) -> None:
        """``coordinated``: this process runs the register for a fleet's coordinator,
        which gave it the organisation's lock."""
        self.app = app
        self.coordinated = coordinated
        self.holder = (COORDINATED if coordinated else "") + _me()

    def acquire(self) -> None:
        """Take the lease, or raise :class:`LockError` naming who holds it."""
        from sqlalchemy.exc import IntegrityError

        try:
            self._take()
        except IntegrityError:
            # Another process inserted the first lease between our look and our insert
            # (no row to lock yet, so FOR UPDATE could not stop it): look again, now
            # that there is one to find.
            self._take()

    def _take(self) -> None:
        now = self.app.clock()
        with self.app.transaction() as session:
            row = session.get(Lock, NAME, with_for_update=True)
            if row is None:
                session.add(Lock(name=NAME, holder=self.holder, acquired_at=now,
                                 heartbeat_at=now))
                return
            if row.holder == self.holder:
                pass
            elif self.coordinated and row.holder.startswith(COORDINATED):
                log.info("lease of %s taken over: the coordinator gave this process the "
                         "organisation", row.holder)
            elif row.heartbeat_at > now - LEASE and not _dead_here(row.holder):
                raise LockError(
                    f"another reclambot ({row.holder}) has been working on this register "
                    f"since {datetime_fr(row.acquired_at)}; stop it first (or wait "
                    f"{int(LEASE.total_seconds() // 60)} minutes if it died on another machine)"
                )
            row.holder, row.acquired_at, row.heartbeat_at = self.holder, now, now

    def renew(self) -> None:
        """Keep the lease; raise if another process took it over meanwhile."""
        with self.app.transaction() as session:
            result = session.execute(
                update(Lock).where(Lock.name == NAME, Lock.holder == self.holder)
                .values(heartbeat_at=self.app.clock())
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LockError("the lock on the register was taken over by another process")

    def release(self) -> None:
        with self.app.transaction() as session:
            session.execute(delete(Lock).where(Lock.name == NAME, Lock.holder == self.holder))

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
