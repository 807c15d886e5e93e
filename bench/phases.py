"""Phases of the benchmark run in their own process, so that their peak RSS is theirs.

    python -m bench.phases ingest CONFIG   # fetch, parse, classify, register, render
    python -m bench.phases send CONFIG     # send the whole outbox over one connection

Each prints one JSON line: what it did, how long it took, and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    # /proc's VmHWM belongs to this program's memory only: getrusage's ru_maxrss survives
    # exec on Linux, and would report the parent's peak (the bench holds the corpus).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    phase, config_path = sys.argv[1], Path(sys.argv[2])
    from bot.app import build_app
    from bot.config import load_config
    from bot.outbox import send_pending
    from bot.pipeline import process_mailbox
    from bot.sinks import make_sink
    from bot.sources import make_source

    app = build_app(load_config(config_path))
    baseline = _status_kib("VmRSS")
    started = time.perf_counter()
    if phase == "ingest":
        source = make_source(app.config)
        summary = process_mailbox(app, source, sink=None)
        source.close()
        done = summary.fetched
    else:
        sink = make_sink(app.config)
        done = 0
        while True:
            report = send_pending(app, sink, limit=5000)
            done += report.sent
            if not report.sent:
                break
    seconds = time.perf_counter() - started
    print(json.dumps({"phase": phase, "count": done, "seconds": seconds,
                      "baseline_rss_mib": baseline / 1024,
                      "peak_rss_mib": _status_kib("VmHWM") / 1024}))


if __name__ == "__main__":
    main()
