"""The web form's benchmark: submissions per second end to end, their latency, and the
memory of the ``reclambot serve`` process.

    python -m bench.web [--submissions 300] [--clients 4] [--output FILE]

It starts ``reclambot serve`` as a process (uvicorn, SQLite register, the test SMTP
server as the mail server) and drives it over HTTP from ``--clients`` threads, each doing
what a browser does: open the form (GET, CSRF token and cookie), post it (a conforming
form), follow the redirection to the follow-up page. A submission's latency is its POST
and the follow-up page; the rate counts whole submissions. The acknowledgements are
counted at the SMTP server when it ends. Figures go to ``bench/results/web.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.phases import status_kib
from bench.run import machine
from tests.conftest import write_config
from tests.servers import SmtpServer, free_port

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "form_version": "2026-01", "client_name": "Jeanne Martin", "category": "stagiaire",
    "object": "Attestation non reçue", "product": "Convention n° 2026-114",
    "training_actions": "Sophrologie (septembre)", "gdpr_consent": "Oui",
    "description": "Toujours pas d'attestation après deux relances.\n" * 5,
}




def _client(url: str, count: int, first: int, latencies: list[float],
            lock: threading.Lock) -> None:
    import httpx2 as httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(first, first + count):
            page = client.get("/reclamation")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token is not None, page.status_code
            started = time.perf_counter()
            answer = client.post("/reclamation", data={
                **FIELDS, "csrf": token.group(1), "email": f"plaignant{index}@example.org"},
                follow_redirects=True)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200 and "REC-" in answer.text, answer.status_code
            with lock:
                latencies.append(elapsed)


def run(submissions: int, clients: int) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="reclambot-bench-web-"))
    smtp = SmtpServer()
    port = free_port()
    config = write_config(
        directory, imap_port=1, imap_user="web", smtp_port=smtp.port,
        database_url=f"sqlite:///{directory / 'register.sqlite3'}",
        extra=f'[web]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
              f"submissions_per_ip_per_hour = {submissions * 2}\n")
    server = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "serve"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx2 as httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/reclamation", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "reclambot serve did not start"
                time.sleep(0.1)
        baseline = status_kib("VmRSS", server.pid) / 1024
        latencies: list[float] = []
        lock = threading.Lock()
        each = submissions // clients
        threads = [threading.Thread(target=_client, args=(url, each, i * each, latencies, lock))
                   for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        deadline = time.monotonic() + 60
        expected = each * clients
        while len({r for c in smtp.handler.received for r in c.recipients
                   if r.startswith("plaignant")}) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        acknowledged = len({r for c in smtp.handler.received for r in c.recipients
                            if r.startswith("plaignant")})
        peak = status_kib("VmHWM", server.pid) / 1024
    finally:
        server.terminate()
        server.wait(10)
        smtp.stop()
    latencies.sort()
    return {
        "submissions": expected,
        "clients": clients,
        "seconds": seconds,
        "submissions_per_second": expected / seconds,
        "median_ms": statistics.median(latencies) * 1000,
        "p90_ms": latencies[int(len(latencies) * 0.9) - 1] * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "max_ms": latencies[-1] * 1000,
        "acknowledged": acknowledged,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "web.json")
    args = parser.parse_args()
    results = {"machine": machine(), "web": run(args.submissions, args.clients)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"machine: {results['machine']}")
    for key, value in results["web"].items():
        shown = f"{value:10.1f}" if isinstance(value, float) else f"{value:>10}"
        print(f"  {key:<28}{shown}")


if __name__ == "__main__":
    main()
