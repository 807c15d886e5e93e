"""Many organisations in one process: memory per organisation, and the acknowledgement's
latency while every mailbox is watched.

    python -m bench.fleet [--organisations 50 150] [--submissions 50]

For each count it writes that many ``DIR/<slug>/config.toml`` (one Dovecot user and one
SQLite register each), starts ``reclambot run --organisations DIR`` as a process, waits
until every organisation has made its first pass, then reads the process's RSS; then it
delivers ``--submissions`` form submissions to organisations drawn at random, one every
50 ms, and times each acknowledgement at the SMTP server. The memory added per
organisation is the slope between the counts. Figures go to ``bench/results/fleet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.phases import status_kib
from bench.run import TimedCapture, _imap, machine
from tests.conftest import BOT, write_config
from tests.servers import DOVECOT_PASSWORD, SmtpServer, start_dovecot, start_postgres

ROOT = Path(__file__).resolve().parent.parent



def _polled(folder: Path) -> bool:
    try:
        with sqlite3.connect(folder / "register.sqlite3") as db:
            return db.execute("select 1 from settings where key = 'last_poll'").fetchone() \
                is not None
    except sqlite3.Error:
        return False


def _polled_schemas(url: str, slugs: set[str]) -> set[str]:
    """Those of ``slugs`` whose register (a schema of ``url``) has made its first pass."""
    import psycopg

    waiting = set()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as db:
        for slug in slugs:
            try:
                found = db.execute(f'select 1 from "{slug}".settings where key = '
                                   "'last_poll'").fetchone()
            except psycopg.Error:
                found = None
            if found is None:
                waiting.add(slug)
    return waiting


def run(dovecot, count: int, submissions: int,  # type: ignore[no-untyped-def]
        database: str | None = None) -> dict[str, float]:
    from bot.testing import samples

    handler = TimedCapture()
    smtp = SmtpServer(handler)
    root = Path(tempfile.mkdtemp(prefix=f"reclambot-bench-fleet-{count}-"))
    users = {}
    for index in range(count):
        slug = f"org{index:05d}"
        folder = root / slug
        folder.mkdir()
        users[slug] = f"fleet{count}-{index}-{os.getpid()}"
        config = write_config(folder, imap_port=dovecot.port, imap_user=users[slug],
                              smtp_port=smtp.port, database_url=database or
                              f"sqlite:///{folder / 'register.sqlite3'}")
        text = config.read_text()
        if database:
            text = text.replace("[database]\n", f'[database]\nschema = "{slug}"\n')
        config.write_text(text.replace(BOT, f"reclamations@{slug}.example.fr")
                          .replace("batch_size = 5\n", ""))
    env = {**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": DOVECOT_PASSWORD}
    command = ["run", "--organisations", str(root)]
    if os.environ.get("BENCH_FLEET_SINGLE"):  # the same organisation run alone, to compare
        command = ["--config", str(root / "org00000" / "config.toml"), "run"]
    # BENCH_FLEET_LOG=FILE keeps the fleet's log, to see where a slow acknowledgement went.
    log = open(os.environ["BENCH_FLEET_LOG"], "wb") if os.environ.get("BENCH_FLEET_LOG") \
        else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "bot", *command], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=log)
    try:
        started = time.monotonic()
        waiting = set(users)
        while waiting:
            assert process.poll() is None, "the fleet stopped"
            assert time.monotonic() - started < 600, f"{len(waiting)} never polled"
            waiting = (_polled_schemas(database, waiting) if database else
                       {slug for slug in waiting if not _polled(root / slug)})
            time.sleep(0.5)
        ready = time.monotonic() - started
        os.sync()  # the registers just created are not written back during the probes
        time.sleep(2)
        rss = status_kib("VmRSS", process.pid) / 1024
        rng = random.Random(20261203)
        delays = []
        chosen = [rng.choice(sorted(users)) for _ in range(submissions)]
        clients = {slug: _imap(dovecot, users[slug]) for slug in set(chosen)}
        for index, slug in enumerate(chosen):
            address = f"lat{index}@example.net"
            raw = samples.form_submission({**samples.COMPLETE_FORM, "Adresse e-mail": address})
            sent = time.monotonic()
            clients[slug].append("INBOX", raw)
            with handler.event:
                handler.event.wait_for(lambda a=address: a in handler.arrivals, timeout=30)
            delays.append(handler.arrivals.get(address, sent + 30) - sent)
            time.sleep(max(0.0, 0.05 - (time.monotonic() - sent)))
        for client in clients.values():
            client.logout()
        peak = status_kib("VmRSS", process.pid) / 1024
    finally:
        process.terminate()
        process.wait(60)
        smtp.stop()
    delays.sort()
    return {"organisations": count, "registers": "schemas" if database else "sqlite",
            "seconds_to_watch_all": ready, "rss_mib": rss,
            "rss_after_submissions_mib": peak, "submissions": submissions,
            "ack_median_ms": statistics.median(delays) * 1000 if delays else 0.0,
            "ack_p99_ms": delays[max(int(len(delays) * 0.99) - 1, 0)] * 1000 if delays else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisations", type=int, nargs="+", default=[50, 150])
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--registers", choices=("sqlite", "schemas"), default="schemas",
                        help="a SQLite file each, or a schema each of one PostgreSQL database")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    dovecot = start_dovecot()
    postgres = start_postgres() if args.registers == "schemas" else None
    try:
        runs = [run(dovecot, count, args.submissions,
                    postgres.database() if postgres else None)
                for count in args.organisations]
    finally:
        dovecot.stop()
        if postgres is not None:
            postgres.stop()
    results: dict[str, object] = {"machine": machine(), "runs": runs}
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        results["kib_per_organisation"] = ((last["rss_mib"] - first["rss_mib"]) * 1024
                                           / (last["organisations"] - first["organisations"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
