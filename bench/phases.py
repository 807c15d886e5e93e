"""Phases of the benchmark run in their own process, so that their peak RSS is theirs.

    python -m bench.phases ingest CONFIG   # fetch, parse, classify, register, render
    python -m bench.phases send CONFIG     # send the whole outbox over one connection
    python -m bench.phases bare CONFIG     # the same emails again, by a bare aiosmtplib loop

Each prints one JSON line: what it did, how long it took, and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App


def status_kib(field: str, pid: int | str = "self") -> int:
    """A memory field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status``, in KiB; 0 for a
    process that has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass  # ended between the listing and the read
    return 0


def _status_kib(field: str) -> int:
    # /proc's VmHWM belongs to this program's memory only: getrusage's ru_maxrss survives
    # exec on Linux, and would report the parent's peak (the bench holds the corpus).
    return status_kib(field) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class TotalRss(threading.Thread):
    """Samples the RSS of this process plus its children (parse workers) every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        own = Path("/proc/self/cmdline").read_bytes()
        while not self.done.wait(0.02):
            children = [pid for task in Path("/proc/self/task").iterdir()
                        for pid in (task / "children").read_text().split()]
            total = status_kib("VmRSS") + sum(status_kib("VmRSS", pid) for pid in children
                                              if _started(pid, own))
            self.peak_kib = max(self.peak_kib, total)


def _started(pid: str, parent: bytes) -> bool:
    """Whether a child runs its own program: between fork and exec it shares every page
    with this process (its RSS is ours), and counting it would count us twice."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != parent
    except OSError:
        return False


def _send_by_worker(app: App) -> int:
    """The outbox sent by the send worker alone (no intake beside it): handed over as it
    has room, its answers booked, until nothing is due."""
    from bot.outbound.outbox import SendReport
    from bot.outbound.sendahead import SendAhead
    from bot.outbound.sinks import make_sink
    from bot.store.dossier import DossierWrites

    ahead = SendAhead.for_app(app, make_sink(app.config))
    assert ahead is not None, "[bot] send_worker, an SQLite register and SMTP are needed"
    writes, report = DossierWrites(app.dossiers), SendReport()
    try:
        ahead.hand_over(writes, report)
        ahead.close(writes, report)  # hands over the rest as the worker has room
    finally:
        writes.close()
    return report.sent


def bare_loop(app: App) -> int:
    """What the outbox is measured against: its rendered emails, read from the register
    first, sent again by nothing but aiosmtplib's ``sendmail`` in a loop over one
    connection to the same server. No bookkeeping, no dossier copy, no log."""
    import asyncio

    import aiosmtplib
    from sqlalchemy import select

    from bot.store.models import Outbox

    assert app.config.smtp is not None
    server = app.config.smtp
    with app.sessions() as session:
        emails = session.execute(select(Outbox.envelope_from, Outbox.recipients, Outbox.raw)
                                 .order_by(Outbox.id)).all()

    async def send() -> None:
        client = aiosmtplib.SMTP(hostname=server.host, port=server.port,
                                 timeout=server.timeout)
        await client.connect()
        for envelope_from, recipients, raw in emails:
            await client.sendmail(envelope_from, list(recipients), raw)
        await client.quit()

    asyncio.run(send())
    return len(emails)


def main() -> None:
    phase, config_path = sys.argv[1], Path(sys.argv[2])
    from bot.app import build_app
    from bot.config import load_config
    from bot.intake.sources import make_source
    from bot.outbound.outbox import send_pending
    from bot.outbound.sinks import make_sink
    from bot.pipeline import process_mailbox

    app = build_app(load_config(config_path))
    baseline = _status_kib("VmRSS")
    sampler = TotalRss()
    sampler.start()
    started = time.perf_counter()
    if phase == "ingest":
        source = make_source(app.config)
        summary = process_mailbox(app, source, sink=None)
        source.close()
        done = summary.fetched
    elif phase == "bare":
        done = bare_loop(app)
    elif phase in ("whole", "whole_ahead"):
        # What `run --once` does with a backlog: everything handled, every answer sent,
        # here or (whole_ahead) by the send worker while the next batches are handled.
        source = make_source(app.config)
        summary = process_mailbox(app, source, sink=make_sink(app.config),
                                  send_ahead=phase == "whole_ahead")
        source.close()
        done = summary.sent.sent
    elif phase == "send_worker":
        done = _send_by_worker(app)
    else:
        sink = make_sink(app.config)
        done = 0
        while True:
            report = send_pending(app, sink, limit=5000)
            done += report.sent
            if not report.sent:
                break
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    peak = _status_kib("VmHWM")
    print(json.dumps({"phase": phase, "count": done, "seconds": seconds,
                      "baseline_rss_mib": baseline / 1024,
                      "peak_rss_mib": peak / 1024,
                      # The workers' memory counts too; the sampler can miss the very top.
                      "peak_total_rss_mib": max(peak, sampler.peak_kib) / 1024}))


if __name__ == "__main__":
    main()
