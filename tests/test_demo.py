"""``reclambot demo``: the embedded default, with no server at all."""

from __future__ import annotations

import csv
import email
import email.policy
from pathlib import Path

import pytest

from bot.cli import main


def test_demo_runs_the_pipeline_and_is_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "demo"
    assert main(["demo", "--dir", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "6 message(s) traité(s) ; 6 courriel(s) envoyé(s)." in out
    assert "Puis la direction a répondu sur REC-" in out and "3 courriel(s) envoyé(s)" in out
    assert "REC-" in out and "laissé dans la boîte de réception" in out

    sent = sorted((directory / "emails-envoyes").glob("*.eml"))
    kinds = sorted(p.name.split("-", 1)[1] for p in sent)
    assert kinds == sorted([
        "form_link.eml", "acknowledgement.eml", "acknowledgement.eml",
        "director_new_complaint.eml", "director_new_complaint.eml", "information_request.eml",
        "response.eml", "mediation_rights.eml", "director_confirmation.eml",
    ])
    message = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
    assert message["Auto-Submitted"]
    assert len(list((directory / "maildir" / "outbox" / "new").iterdir())) == 9
    assert len(list((directory / "maildir" / "inbox" / "new").iterdir())) == 1  # untagged

    # Run again: nothing new arrives, nothing is sent twice.
    assert main(["demo", "--dir", str(directory)]) == 0
    assert "0 message(s) traité(s) ; 0 courriel(s) envoyé(s)." in capsys.readouterr().out
    assert len(list((directory / "maildir" / "outbox" / "new").iterdir())) == 9

    output = tmp_path / "register.csv"
    config = str(directory / "config.toml")
    assert main(["--config", config, "export", "--format", "csv", "--output", str(output)]) == 0
    with output.open(encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert len(rows) == 3 and rows[0][0] == "Numéro du ticket"
    assert [r[0][-4:] for r in rows[1:]] == ["0001", "0002"]


def test_run_once_on_maildir_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "demo"
    main(["demo", "--dir", str(directory)])
    capsys.readouterr()
    assert main(["--config", str(directory / "config.toml"), "run", "--once"]) == 0
    assert "0 message(s) traité(s)" in capsys.readouterr().out
    assert main(["--config", str(directory / "config.toml"), "outbox"]) == 0
    assert "0 courriel(s) non envoyé(s)" in capsys.readouterr().out


def test_quarantine_retry_on_a_maildir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same commands on the demo's Maildir: listed, put back once, handled once."""
    from bot.testing import samples

    directory = tmp_path / "demo"
    main(["demo", "--dir", str(directory)])
    config = directory / "config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\n[limits]\nmax_message_bytes = 5000\n", encoding="utf-8")
    fields = dict(samples.COMPLETE_FORM, **{"Adresse e-mail": "paul@example.org"})
    big = samples.form_submission(
        fields, attachments=[("facture.pdf", "application/pdf", samples.pdf_bytes(8000))])
    (directory / "maildir" / "inbox" / "new" / "big.eml").write_bytes(big)
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "trop volumineux : 1" in capsys.readouterr().out

    assert main(["--config", str(config), "quarantine", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-1].startswith("1 message(s) en quarantaine")
    assert "max_message_bytes (5000)" in listing[0]

    config.write_text(text, encoding="utf-8")
    assert main(["--config", str(config), "quarantine", "retry", "--all"]) == 0
    out = capsys.readouterr().out
    assert "1 message(s) remis dans" in out and "submission: 1" in out
    assert main(["--config", str(config), "quarantine", "retry", "--all"]) == 0
    assert "rien en quarantaine" in capsys.readouterr().out
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "0 message(s) traité(s)" in capsys.readouterr().out
    acknowledgements = [p for p in (directory / "maildir" / "outbox" / "new").iterdir()
                        if b"paul@example.org" in p.read_bytes()]
    assert len(acknowledgements) == 2  # the polite refusal, then the acknowledgement, once
