"""Many organisations in one process: memory per organisation, the acknowledgement's
latency while every mailbox is watched, and a fail-over between two processes.

    python -m bench.fleet [--organisations 100 1000] [--submissions 500]
    python -m bench.fleet --failover 200
    python -m bench.fleet --organisations 1000 --processes 2

For each count it writes that many ``DIR/<slug>/config.toml`` (one Dovecot user each,
and a register each: a schema of one PostgreSQL database by default, or a SQLite file
with ``--registers sqlite``), starts ``reclambot run --organisations DIR`` as a process,
waits until every organisation has made its first pass, then reads the process's RSS;
then it delivers ``--submissions`` form submissions to mailboxes drawn at random, one
every 50 ms whatever the acknowledgements do (an MDA's delivery into the Maildir), and
times each acknowledgement at the SMTP server. The memory added per organisation is the
slope between the counts.

``--processes 2``: the organisations in two processes sharing them through a
coordinator database, as on a machine of two cores (memory and CPU are their sums).

``--failover N``: two processes share N organisations through a coordinator database;
once each holds its share, submissions start (one every 50 ms), one process is killed
(SIGKILL) halfway through, and the bench times how long until the other runs every
organisation, then checks that every submission was registered once and acknowledged
once. Figures go to ``bench/results/fleet.json``.

Dovecot announces new mail to an IDLE session 0.5 s after it lands (``NOTIFY_DELAY_MSECS``
in its source, not a setting): a probe session on one mailbox measures that floor in the
same run. A Dovecot holding a thousand IDLE sessions of one system user needs more than
Linux's 128 inotify instances per user (else it polls every 30 s, and says so in its
log) and more than its 1,024 IMAP processes: the bench raises both, as a host would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.phases import status_kib
from bench.run import TimedCapture, _imap, calibration, latency_ms, machine
from tests.conftest import BOT, write_config
from tests.servers import DOVECOT_PASSWORD, SmtpServer, start_dovecot, start_postgres

ROOT = Path(__file__).resolve().parent.parent
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
#: A host's Dovecot for thousands of connected users: one IMAP process each.
DOVECOT_SCALE = "service imap {\n  process_limit = 8192\n}\n"
EVERY = 0.05


def _inotify(wanted: int) -> int:
    """Linux's inotify instances per user, raised to ``wanted`` when root may."""
    current = int(INOTIFY.read_text())
    if current < wanted:
        try:
            INOTIFY.write_text(str(wanted))
        except OSError:
            print(f"fs.inotify.max_user_instances = {current}: Dovecot will poll the "
                  f"mailboxes beyond it every 30 s", file=sys.stderr)
        current = int(INOTIFY.read_text())
    return current


class Fleet:
    """``DIR/<slug>/config.toml`` for ``count`` organisations, and their registers."""

    def __init__(self, dovecot: Any, smtp: SmtpServer, count: int, database: str | None,
                 name: str) -> None:
        self.dovecot = dovecot
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix=f"reclambot-bench-fleet-{name}-"))
        self.users: dict[str, str] = {}
        for index in range(count):
            slug = f"org{index:05d}"
            folder = self.root / slug
            folder.mkdir()
            self.users[slug] = f"fleet{name}-{index}-{os.getpid()}"
            config = write_config(folder, imap_port=dovecot.port, imap_user=self.users[slug],
                                  smtp_port=smtp.port, database_url=database or
                                  f"sqlite:///{folder / 'register.sqlite3'}")
            text = config.read_text()
            if database:
                text = text.replace("[database]\n", f'[database]\nschema = "{slug}"\n')
            config.write_text(text.replace(BOT, f"reclamations@{slug}.example.fr")
                              .replace("batch_size = 5\n", ""))

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": DOVECOT_PASSWORD}
        command = ["run", "--organisations", str(self.root), *extra]
        if os.environ.get("BENCH_FLEET_SINGLE"):  # one organisation run alone, to compare
            command = ["--config", str(self.root / "org00000" / "config.toml"), "run"]
        # BENCH_FLEET_LOG=FILE keeps the fleet's log, to see where the time went.
        log: Any = subprocess.DEVNULL
        if os.environ.get("BENCH_FLEET_LOG"):
            log = open(os.environ["BENCH_FLEET_LOG"], "ab")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "bot", *command], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=log)

    def query(self, sql: str) -> dict[str, list[tuple[Any, ...]]]:
        """``sql`` in each organisation's register (None for one not created yet)."""
        import sqlite3

        found: dict[str, list[tuple[Any, ...]]] = {}
        if self.database:
            import psycopg

            with psycopg.connect(self.database.replace("postgresql+psycopg", "postgresql"),
                                 autocommit=True) as db:
                for slug in self.users:
                    try:
                        db.execute(f'SET search_path TO "{slug}"')
                        found[slug] = list(db.execute(sql).fetchall())
                    except psycopg.Error:
                        pass
            return found
        for slug in self.users:
            try:
                with sqlite3.connect(self.root / slug / "register.sqlite3") as db:
                    found[slug] = list(db.execute(sql).fetchall())
            except sqlite3.Error:
                pass
        return found

    def polled(self) -> set[str]:
        """The organisations that have made their first pass."""
        return {slug for slug, rows in
                self.query("select 1 from settings where key = 'last_poll'").items() if rows}

    def holders(self) -> dict[str, str]:
        """The pid holding each organisation's register (its lease), by slug."""
        return {slug: rows[0][0].rpartition(":")[2]
                for slug, rows in self.query("select holder from locks").items() if rows}

    def deliver(self, slug: str, raw: bytes) -> None:
        """Deliver as an MDA does: written into ``tmp/``, then renamed into ``new/``."""
        maildir = self.dovecot.maildir(self.users[slug])
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.bench"
        (maildir / "tmp" / name).write_bytes(raw)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _wait(check: Callable[[], bool], timeout: float, what: str,
          process: subprocess.Popen[bytes] | None = None) -> float:
    started = time.monotonic()
    while not check():
        assert process is None or process.poll() is None, "the fleet stopped"
        assert time.monotonic() - started < timeout, f"waited in vain: {what}"
        time.sleep(0.5)
    return time.monotonic() - started


def _submissions(fleet: Fleet, handler: TimedCapture, count: int, seed: int,
                 during: Callable[[int], None] = lambda _: None) -> dict[str, float]:
    """``count`` forms to random organisations, one every 50 ms: address -> delivery time."""
    from bot.testing import samples

    rng = random.Random(seed)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for index in range(count):
        slug = rng.choice(sorted(fleet.users))
        address = f"s{seed}-{index}@example.net"
        raw = samples.form_submission({**samples.COMPLETE_FORM, "Adresse e-mail": address})
        time.sleep(max(0.0, start + index * EVERY - time.monotonic()))
        sent[address] = time.monotonic()
        fleet.deliver(slug, raw)
        during(index)
    with handler.event:
        handler.event.wait_for(lambda: all(a in handler.arrivals for a in sent), timeout=120)
    return sent


def _announce_floor(dovecot: Any, fleet: Fleet, rounds: int = 10) -> float:
    """Median delay between a delivery and Dovecot's announcement to an IDLE session."""
    from bot.testing import samples

    slug = sorted(fleet.users)[-1]
    probe = _imap(dovecot, fleet.users[slug])
    probe.select_folder("INBOX", readonly=True)
    delays = []
    try:
        for index in range(rounds):
            probe.idle()
            time.sleep(0.2)
            started = time.monotonic()
            fleet.deliver(slug, samples.free_text(sender=f"probe{index}@example.net",
                                                  subject="Question", headers={}))
            while not any(b"EXISTS" in r for r in probe.idle_check(5)):
                pass
            delays.append(time.monotonic() - started)
            probe.idle_done()
    finally:
        probe.logout()
    return statistics.median(delays) * 1000


def run(dovecot: Any, count: int, submissions: int, database: str | None,
        processes: int = 1, coordinator: str = "") -> dict[str, Any]:
    """``count`` organisations in ``processes`` processes (several share them through
    ``coordinator``); memory and CPU are those of all of them together."""
    handler = TimedCapture()
    smtp = SmtpServer(handler)
    fleet = Fleet(dovecot, smtp, count, database, str(count))
    extra = ("--coordinator", coordinator, "--look-every", "5") if processes > 1 else ()
    running = [fleet.start(*extra) for _ in range(processes)]
    process = running[0]

    def shared_out() -> bool:
        if len(fleet.polled()) < count:
            return False
        if processes == 1:
            return True
        held = list(fleet.holders().values())
        return len(held) == count and all(
            held.count(str(p.pid)) >= count // processes for p in running)

    try:
        ready = _wait(shared_out, 900, f"{count - len(fleet.polled())} never polled", process)
        os.sync()  # the registers just created are not written back during the probes
        time.sleep(5)
        rss = sum(status_kib("VmRSS", p.pid) for p in running) / 1024
        cpu_before = sum(_cpu_seconds(p.pid) for p in running)
        time.sleep(10)
        idle_cpu = (sum(_cpu_seconds(p.pid) for p in running) - cpu_before) / 10
        profiler = None
        if os.environ.get("BENCH_FLEET_PROFILE"):  # py-spy's collapsed stacks, during the load
            profiler = subprocess.Popen(
                # Without stopping the process for each sample: a thousand threads'
                # stacks, read while it waits, would be most of what is measured.
                ["py-spy", "record", "--nonblocking", "-p", str(process.pid), "-f", "raw",
                 "-r", "50",
                 "-d", str(int(submissions * EVERY) + 3), "-o",
                 os.environ["BENCH_FLEET_PROFILE"]], stdout=subprocess.DEVNULL)
        # This machine's speed drifts from hour to hour (bench.run's calibration): its
        # figure beside each run tells a slower machine from slower code.
        speed = calibration(3)
        cpu_before = sum(_cpu_seconds(p.pid) for p in running)
        started = time.monotonic()
        sent = _submissions(fleet, handler, submissions, 20261203)
        busy_cpu = ((sum(_cpu_seconds(p.pid) for p in running) - cpu_before)
                    / (time.monotonic() - started))
        if profiler is not None:
            profiler.wait()
        delays = [handler.arrivals.get(a, t + 120) - t for a, t in sent.items()]
        peak = sum(status_kib("VmRSS", p.pid) for p in running) / 1024
        floor = _announce_floor(dovecot, fleet)
    finally:
        for each in running:
            each.terminate()
            each.wait(120)
        smtp.stop()
        fleet.remove()
    return {"organisations": count, "registers": "schemas" if database else "sqlite",
            "processes": processes,
            "seconds_to_watch_all": ready, "rss_mib": rss, "rss_after_submissions_mib": peak,
            "cpu_while_idle": idle_cpu, "cpu_during_submissions": busy_cpu,
            "calibration_s": speed,
            "submissions": submissions,
            "acknowledged": sum(a in handler.arrivals for a in sent),
            "dovecot_announces_after_ms": floor, **latency_ms(delays, "ack_")}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def failover(dovecot: Any, count: int, database: str, coordinator: str,
             submissions: int) -> dict[str, Any]:
    """Two processes share ``count`` organisations; one is killed under load."""
    handler = TimedCapture()
    smtp = SmtpServer(handler)
    fleet = Fleet(dovecot, smtp, count, database, f"failover{count}")
    extra = ("--coordinator", coordinator, "--look-every", "5")
    first = fleet.start(*extra)
    second = fleet.start(*extra)
    killed_at: list[float] = []
    try:
        def shared_out() -> bool:
            held = list(fleet.holders().values())
            return len(held) == count and sorted(held.count(str(p.pid))
                                                 for p in (first, second)) == \
                [count // 2, count - count // 2]

        ready = _wait(shared_out, 900, "the organisations never shared out")
        victim = sorted(fleet.holders().items())[0][1]
        victim_process, survivor = (first, second) if victim == str(first.pid) \
            else (second, first)
        held = {s for s, pid in fleet.holders().items() if pid == str(victim_process.pid)}

        def kill_halfway(index: int) -> None:
            if index == submissions // 2:
                victim_process.send_signal(signal.SIGKILL)
                killed_at.append(time.monotonic())
                victim_process.wait()  # as its supervisor (systemd) would

        taken: list[float] = []

        def watch_takeover() -> None:
            while not killed_at:
                time.sleep(0.05)
            _wait(lambda: set(fleet.holders().values()) == {str(survivor.pid)}, 300,
                  "the survivor never ran every organisation")
            taken.append(time.monotonic() - killed_at[0])

        watcher = threading.Thread(target=watch_takeover)
        watcher.start()
        sent = _submissions(fleet, handler, submissions, 20261204, during=kill_halfway)
        watcher.join()
        time.sleep(5)  # anything sent twice would have arrived by now
        acks = {a: len(set(handler.ids.get(a, []))) for a in sent}
        copies = sum(len(handler.ids.get(a, [])) - len(set(handler.ids.get(a, [])))
                     for a in sent)
        interrupted = {row[0] for rows in fleet.query(
            "select message_id from outbox where interrupted").values() for row in rows}
        resent = {i for a in sent for i in handler.ids.get(a, [])
                  if handler.ids[a].count(i) > 1}
        registered = [row[0] for rows in fleet.query(
            "select client_email from complaints").values() for row in rows]
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.terminate()
                process.wait(120)
        smtp.stop()
        fleet.remove()
    delays = [handler.arrivals.get(a, t + 120) - t for a, t in sent.items()]
    return {"organisations": count, "seconds_to_share_out": ready,
            "held_by_the_killed_process": len(held),
            "seconds_until_the_other_ran_them_all": taken[0] if taken else None,
            "submissions": submissions,
            "acknowledged_once": sum(n == 1 for n in acks.values()),
            "acknowledged_twice_or_more": sum(n > 1 for n in acks.values()),
            # Accepted by the SMTP server just before the kill, not yet marked sent: sent
            # again by the survivor with the same Message-ID (receivers see one email),
            # as after any crash; the crash test allows it for these rows only.
            "copies_resent_with_their_message_id": copies,
            "copies_all_of_interrupted_sends": resent <= interrupted,
            "not_acknowledged": sum(n == 0 for n in acks.values()),
            "registered_once": sum(registered.count(a) == 1 for a in sent),
            "registered_twice_or_more": sum(registered.count(a) > 1 for a in sent),
            **latency_ms(delays, "ack_")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisations", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--submissions", type=int, default=500)
    parser.add_argument("--registers", choices=("sqlite", "schemas"), default="schemas",
                        help="a SQLite file each, or a schema each of one PostgreSQL database")
    parser.add_argument("--processes", type=int, default=1,
                        help="run the organisations in this many processes sharing them "
                             "through a coordinator database (one per core)")
    parser.add_argument("--failover", type=int, metavar="N", default=0,
                        help="two processes sharing N organisations, one killed")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    wanted = 2 * max([*args.organisations, args.failover, 64]) + 256
    inotify = _inotify(wanted)
    dovecot = start_dovecot(extra=DOVECOT_SCALE)
    postgres = (start_postgres() if args.registers == "schemas" or args.failover
                or args.processes > 1 else None)
    results: dict[str, Any] = {"machine": machine(), "inotify_max_user_instances": inotify}
    try:
        results["runs"] = runs = [
            run(dovecot, count, args.submissions,
                postgres.database() if postgres and args.registers == "schemas" else None,
                args.processes, postgres.database() if postgres else "")
            for count in args.organisations]
        if args.failover:
            assert postgres is not None
            results["failover"] = failover(dovecot, args.failover, postgres.database(),
                                           postgres.database(), args.submissions)
    finally:
        dovecot.stop()
        if postgres is not None:
            postgres.stop()
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        results["kib_per_organisation"] = ((last["rss_mib"] - first["rss_mib"]) * 1024
                                           / (last["organisations"] - first["organisations"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
