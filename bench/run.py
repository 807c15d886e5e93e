"""The benchmark: throughput, latency, memory and start-up of reclambot, on this machine.

    python -m bench.run [--messages 1000] [--large 10000] [--latency 200] [--output FILE]

It starts the same Dovecot and SMTP servers as the tests, generates the corpus with a
fixed seed (``bench/corpus.py``), and prints a table; the same figures go to a JSON file
(default ``bench/results/latest.json``). Needs what the tests need (root, dovecot-imapd).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.parser import BytesHeaderParser
from pathlib import Path

from bench.corpus import corpus
from tests.conftest import write_config
from tests.servers import DOVECOT_PASSWORD, SmtpCapture, SmtpServer, start_dovecot

ROOT = Path(__file__).resolve().parent.parent


class TimedCapture(SmtpCapture):
    """Keeps the arrival time of each email, per recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, float] = {}
        #: The Message-ID of every email each recipient received (the fail-over counts
        #: the copies: a copy sent again after a crash keeps its Message-ID).
        self.ids: dict[str, list[str]] = {}
        self.event = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        message_id = str(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"])
        with self.event:
            for rcpt in envelope.rcpt_tos:
                self.arrivals.setdefault(rcpt, now)
                self.ids.setdefault(rcpt, []).append(message_id)
            self.event.notify_all()
        return "250 OK"


def _imap(dovecot, user: str):  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
    client.login(user, DOVECOT_PASSWORD)
    return client


def _setup(dovecot, smtp_port: int, name: str, workers: int = 0,  # type: ignore[no-untyped-def]
           send_worker: bool = False) -> tuple[Path, str]:
    directory = Path(tempfile.mkdtemp(prefix=f"reclambot-bench-{name}-"))
    user = f"bench-{name}-{os.getpid()}"
    config = write_config(directory, imap_port=dovecot.port, imap_user=user,
                          smtp_port=smtp_port,
                          database_url=f"sqlite:///{directory / 'register.sqlite3'}")
    # The tests' tiny batches make crashes land mid-run; the bench runs the default (100).
    text = config.read_text().replace(
        "batch_size = 5\n",
        f"parse_workers = {workers}\nsend_worker = {str(send_worker).lower()}\n")
    config.write_text(text)
    return config, user


def _phase(phase: str, config: Path) -> dict[str, float]:
    env = {**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": DOVECOT_PASSWORD}
    out = subprocess.run([sys.executable, "-m", "bench.phases", phase, str(config)],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fill(dovecot, user: str, messages: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    client = _imap(dovecot, user)
    try:
        for start in range(0, len(messages), 100):
            client.multiappend("INBOX", messages[start:start + 100])
    finally:
        client.logout()


def throughput(dovecot, smtp: SmtpServer, count: int,  # type: ignore[no-untyped-def]
               workers: int = 0) -> dict[str, float]:
    config, user = _setup(dovecot, smtp.port, f"t{count}w{workers}", workers,
                          send_worker=True)  # for the send_worker phase alone
    messages = [raw for _, raw in corpus(count)]
    _fill(dovecot, user, messages)
    size = sum(map(len, messages))
    del messages
    ingest = _phase("ingest", config)
    # The outbox between two runs of the bare loop over the same emails and server; its
    # share of their mean rate is the figure that matters (this machine's speed drifts
    # within a minute). The first bare run sends the emails before the outbox does: the
    # server sees the same messages in both.
    bare_before = _phase("bare", config)
    send = _phase("send", config)
    bare_after = _phase("bare", config)
    bare_rate = statistics.mean(b["count"] / b["seconds"] for b in (bare_before, bare_after))
    # The same emails again, by the send worker (the register marked them sent: due again).
    _due_again(config)
    by_worker = _phase("send_worker", config)
    return {
        "messages": count,
        "parse_workers": workers,
        "corpus_mib": size / 2**20,
        "ingest_seconds": ingest["seconds"],
        "ingest_per_second": count / ingest["seconds"],
        "ingest_peak_rss_mib": ingest["peak_rss_mib"],
        "ingest_peak_total_rss_mib": ingest["peak_total_rss_mib"],
        "ingest_baseline_rss_mib": ingest["baseline_rss_mib"],
        "sent": send["count"],
        "send_per_second": send["count"] / send["seconds"] if send["seconds"] else 0.0,
        "send_peak_rss_mib": send["peak_rss_mib"],
        "bare_aiosmtplib_per_second": bare_rate,
        "send_share_of_bare": send["count"] / send["seconds"] / bare_rate,
        "send_worker_per_second": by_worker["count"] / by_worker["seconds"],
        "send_worker_share_of_bare": by_worker["count"] / by_worker["seconds"] / bare_rate,
    }


def _due_again(config: Path) -> None:
    """Every email of the register's outbox due again, as if never sent."""
    import sqlite3

    with sqlite3.connect(config.parent / "register.sqlite3") as register:
        register.execute("UPDATE outbox SET status = 'pending', attempts = 0, "
                         "claimed_by = NULL, sent_at = NULL")


def end_to_end(dovecot, smtp: SmtpServer, count: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The backlog handled and every answer sent, in one pass (as `run --once`): with the
    send worker and without it, each on a mailbox and register of its own."""
    messages = [raw for _, raw in corpus(count)]
    figures: dict[str, float] = {"messages": count}
    for phase, label in (("whole", "here"), ("whole_ahead", "ahead")):
        config, user = _setup(dovecot, smtp.port, f"e{count}{label}",
                              send_worker=phase == "whole_ahead")
        _fill(dovecot, user, messages)
        result = _phase(phase, config)
        figures[f"{label}_seconds"] = result["seconds"]
        figures[f"{label}_per_second"] = count / result["seconds"]
        figures[f"{label}_sent"] = result["count"]
        figures[f"{label}_peak_total_rss_mib"] = result["peak_total_rss_mib"]
    figures["ahead_speedup"] = figures["here_seconds"] / figures["ahead_seconds"]
    return figures


def big_attachment(dovecot, smtp: SmtpServer) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from bot.testing import samples

    config, user = _setup(dovecot, smtp.port, "big")
    size = 30 * 2**20
    raw = samples.form_submission(attachments=[("gros.pdf", "application/pdf",
                                                 samples.pdf_bytes(size))])
    _fill(dovecot, user, [raw])
    del raw
    result = _phase("ingest", config)
    return {"attachment_mib": size / 2**20, "peak_rss_mib": result["peak_rss_mib"],
            "baseline_rss_mib": result["baseline_rss_mib"],
            "rise_over_attachment": (result["peak_rss_mib"] - result["baseline_rss_mib"])
            / (size / 2**20)}


def latency(dovecot, count: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from bot.testing import samples

    handler = TimedCapture()
    smtp = SmtpServer(handler)
    config, user = _setup(dovecot, smtp.port, "latency")
    # The backlogs before leave hundreds of MB of files to write back: without this, the
    # disk's catching up shows as a few slow submissions here.
    os.sync()
    env = {**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": DOVECOT_PASSWORD}
    bot = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"],
                           env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    client = _imap(dovecot, user)
    delays = []
    try:
        time.sleep(2.0)  # let it start and enter IDLE
        for i in range(count):
            address = f"latence{i}@example.org"
            fields = dict(samples.COMPLETE_FORM, **{"Adresse e-mail": address})
            raw = samples.form_submission(fields)
            started = time.monotonic()
            client.append("INBOX", raw)
            with handler.event:
                handler.event.wait_for(lambda a=address: a in handler.arrivals, timeout=10)
            arrived = handler.arrivals.get(address)
            delays.append((arrived - started) if arrived else 10.0)
    finally:
        client.logout()
        bot.terminate()
        bot.wait(timeout=30)
        smtp.stop()
    return {"submissions": count, **latency_ms(delays)}


def latency_ms(delays: list[float], prefix: str = "") -> dict[str, float]:
    """Median, p90, p99 and maximum of ``delays`` (seconds), in milliseconds."""
    ordered = sorted(delays) or [0.0]
    last = len(ordered) - 1
    return {f"{prefix}median_ms": statistics.median(ordered) * 1000,
            f"{prefix}p90_ms": ordered[int(0.9 * last)] * 1000,
            f"{prefix}p99_ms": ordered[int(0.99 * last)] * 1000,
            f"{prefix}max_ms": ordered[-1] * 1000}


def startup(runs: int = 15) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return {"help_median_s": statistics.median(times), "help_max_s": max(times)}


def _loop_seconds() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return time.perf_counter() - started


def calibration(runs: int = 5) -> float:
    """Seconds for a fixed pure-Python loop, median of ``runs``: this machine's speed now.

    A shared machine's speed drifts (here, by up to three times from hour to hour); the
    bench measures this before and after its phases, so figures of two runs can be told
    apart from the machine's mood.
    """
    return statistics.median(_loop_seconds() for _ in range(runs))


def machine() -> dict[str, str]:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line)
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "system": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--large", type=int, default=0,
                        help="also a backlog this large, to see the rate hold (e.g. 10000)")
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()

    dovecot = start_dovecot()
    smtp = SmtpServer()
    results: dict[str, object] = {"machine": machine()}
    speed_before = calibration()
    try:
        results["throughput"] = throughput(dovecot, smtp, args.messages)
        results["throughput_worker"] = throughput(dovecot, smtp, args.messages, workers=1)
        if args.large:
            results["throughput_large"] = throughput(dovecot, smtp, args.large)
            results["throughput_large_worker"] = throughput(dovecot, smtp, args.large,
                                                            workers=1)
        results["end_to_end"] = end_to_end(dovecot, smtp, args.messages)
        if args.large:
            results["end_to_end_large"] = end_to_end(dovecot, smtp, args.large)
        results["big_attachment"] = big_attachment(dovecot, smtp)
        if args.latency:
            results["latency"] = latency(dovecot, args.latency)
        results["startup"] = startup()
        results["calibration"] = {"loop_seconds_before": speed_before,
                                  "loop_seconds_after": calibration()}
    finally:
        smtp.stop()
        dovecot.stop()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"machine: {results['machine']}")
    for section, figures in results.items():
        if section == "machine":
            continue
        print(f"\n{section}")
        for key, value in figures.items():  # type: ignore[union-attr]
            shown = (f"{value:10.2f}" if isinstance(value, float) and abs(value) < 10
                     else f"{value:10.1f}" if isinstance(value, float) else f"{value:>10}")
            print(f"  {key:<28}{shown}")
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
