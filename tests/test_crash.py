"""SIGKILL at random points during a backlog, restart, repeat: everything exactly once."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import time

import pytest

from bot.testing import samples
from tests.conftest import BotEnv

pytestmark = pytest.mark.integration

SEED = 20261125


def backlog(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """A realistic mixed backlog; each message carries a unique X-Test-Id."""
    messages = []
    for i in range(count):
        kind = rng.choices(["form", "free", "incomplete", "untagged", "robot"],
                           weights=[40, 20, 15, 15, 10])[0]
        headers = {"X-Test-Id": str(i)}
        if kind == "form":
            fields = dict(samples.COMPLETE_FORM, **{"Adresse e-mail": f"c{i}@example.org"})
            raw = samples.form_submission(fields, headers=headers, as_html=rng.random() < 0.3)
        elif kind == "free":
            raw = samples.free_text(sender=f"f{i}@example.org", subject=f"Réclamation {i}",
                                    headers=headers)
        elif kind == "incomplete":
            fields = dict(samples.COMPLETE_FORM, **{"Adresse e-mail": f"i{i}@example.org",
                                                    "Description": ""})
            raw = samples.form_submission(fields, headers=headers)
        elif kind == "untagged":
            raw = samples.free_text(sender=f"u{i}@example.org", subject=f"Question {i}",
                                    headers=headers)
        else:
            raw = samples.free_text(sender=f"r{i}@example.org", subject=f"Réclamation {i}",
                                    headers={**headers, "Auto-Submitted": "auto-replied"})
        messages.append((kind, raw))
    return messages


@pytest.mark.mailbox
def test_sigkill_at_random_points_changes_nothing(env: BotEnv) -> None:
    rng = random.Random(SEED)
    messages = backlog(rng, 400)  # enough that most runs are killed while still at work
    client = env.imap()
    try:
        for _, raw in messages:
            client.append("INBOX", raw)
    finally:
        client.logout()
    kinds = collections.Counter(kind for kind, _ in messages)
    command = [sys.executable, "-m", "bot", "--config", str(env.config_path), "run", "--once"]

    kills = 0
    for _ in range(10):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    final = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert kills >= 3  # the test really killed the bot in the middle of its work

    # Every message accounted for exactly once, in the register, the contacts or a folder.
    rows = env.inbound()
    assert len(rows) == len(messages)
    assert len({(r.uidvalidity, r.uid) for r in rows}) == len(messages)
    assert all(r.state == "done" for r in rows)
    actions = collections.Counter(r.action for r in rows)
    assert actions == {"submission": kinds["form"] + kinds["incomplete"],
                       "new_contact": kinds["free"], "leave": kinds["untagged"],
                       "robot": kinds["robot"]}
    assert len(env.folder("INBOX")) == kinds["untagged"]
    assert len(env.folder("Réclamations/Traitées")) == (
        kinds["form"] + kinds["incomplete"] + kinds["free"])
    assert len(env.folder("Réclamations/Ignorées")) == kinds["robot"]

    complaints = env.complaints()
    assert len(complaints) == kinds["form"]
    assert sorted(c.sequence for c in complaints) == list(range(1, kinds["form"] + 1))
    assert len(env.contacts()) == kinds["free"] and len(env.tickets()) == kinds["incomplete"]
    for complaint in complaints:
        assert len(list((env.config.dossiers / complaint.number / "messages").iterdir())) == 1

    # Every email sent; a second copy only where a kill fell between the server's
    # acceptance and the bookkeeping, and then with the same Message-ID.
    outbox = env.outbox()
    assert len(outbox) == 2 * kinds["form"] + kinds["free"] + kinds["incomplete"]
    assert {r.status for r in outbox} == {"sent"}
    received = collections.Counter(c.message["Message-ID"] for c in env.smtp.handler.received)
    assert set(received) == {r.message_id for r in outbox}
    repeated = {mid for mid, n in received.items() if n > 1}
    interrupted = {r.message_id for r in outbox if r.interrupted}
    assert repeated <= interrupted
    assert all(n <= 2 for n in received.values())
    print(f"kills={kills} interrupted={len(interrupted)} resent={len(repeated)}")
