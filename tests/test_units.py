"""Small pieces: working days, safe file names, reply stripping, numbering under concurrency."""

from __future__ import annotations

import ast
import datetime as dt
import io
import multiprocessing
import re
from pathlib import Path

import pytest

from bot.config import package_data_dir
from bot.core.workdays import FRANCE
from bot.errors import RulesError
from bot.intake.largeparts import LARGE_PART
from bot.intake.message import content_hash, parse_message
from bot.intake.replies import new_text
from bot.ops.progress import Progress
from bot.rulebook import load_rulebook
from bot.store.db import make_engine, next_in_sequence, session_factory
from bot.store.dossier import Dossiers, safe_filename
from bot.store.schema import ensure_schema


def test_christmas_eve_ticket_skips_holidays_and_weekends() -> None:
    calendar = load_rulebook(package_data_dir("rules")).calendar
    thursday = dt.date(2026, 12, 24)
    assert not calendar.is_working_day(dt.date(2026, 12, 25))  # Christmas Day
    assert not calendar.is_working_day(dt.date(2027, 1, 1))
    assert calendar.add_working_days(thursday, 2) == dt.date(2026, 12, 29)
    assert calendar.add_working_days(thursday, 10) == dt.date(2027, 1, 11)
    assert calendar.add_working_days(dt.date(2026, 5, 13), 1) == dt.date(2026, 5, 15)  # Ascension
    assert calendar.working_days_between(thursday, dt.date(2026, 12, 29)) == 2
    assert calendar.first_working_day(2027, 5) == dt.date(2027, 5, 3)  # 1 May is a Saturday


def test_shipped_calendar_is_the_holidays_librarys_france() -> None:
    # The bot no longer imports `holidays` (11 MiB for 11 dates); the rules file must still
    # say what it said, every year from 2008 (from 2005 to 2007 Whit Monday was not a public
    # holiday: the "journée de solidarité" law of 2008 restored it) to 2100.
    holidays = pytest.importorskip("holidays")
    calendar = load_rulebook(package_data_dir("rules")).calendar
    assert calendar == FRANCE
    for year in range(2008, 2101):
        expected = frozenset(holidays.country_holidays("FR", years=year).keys())
        assert calendar.holidays(year) == expected, year


def test_calendar_rules_name_the_bad_entry(tmp_path: Path) -> None:
    source = package_data_dir("rules")
    for name in ("robots.toml", "categories.toml", "forms.toml"):
        (tmp_path / name).write_text((source / name).read_text())
    text = (source / "procedure.toml").read_text()
    (tmp_path / "procedure.toml").write_text(text.replace('"07-14"', '"14-07"'))
    with pytest.raises(RulesError, match=r"calendar.fixed_holidays: '14-07' is not MM-DD"):
        load_rulebook(tmp_path)
    (tmp_path / "procedure.toml").write_text(
        text.replace("easter_holidays = [1, 39, 50]", 'easter_holidays = [1, "39"]'))
    with pytest.raises(RulesError, match=r"calendar\.easter_holidays must be"):
        load_rulebook(tmp_path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/cron.d/x", "x"),
        ("..\\..\\windows\\evil.exe", "evil.exe"),
        ("..", "piece-jointe"),
        (".htaccess", "htaccess"),
        ("fac\x00ture.pdf", "facture.pdf"),
        ("émargement novembre.pdf", "émargement novembre.pdf"),
        ("a|b<c>.pdf", "a_b_c.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_dossier_refuses_non_reference(tmp_path: Path) -> None:
    dossiers = Dossiers(tmp_path)
    for bad in ("../x", "REC-2026-0001/../..", "", "/etc"):
        with pytest.raises(ValueError):
            dossiers.folder(bad)
    assert dossiers.folder("REC-2026-0001") == tmp_path / "REC-2026-0001"


@pytest.mark.parametrize(
    "quote",
    [
        "Le mar. 24 nov. 2026 à 10:00, SophroAttitude <r@example.fr> a écrit :\n> ancien texte",
        "On Tue, Nov 24, 2026 at 10:00 AM SophroAttitude <r@example.fr> wrote:\n> ancien texte",
        "De : SophroAttitude <r@example.fr>\nEnvoyé : mardi 24 novembre 2026 10:00\n"
        "À : moi@example.org\nObjet : RE: Réclamation\n\nancien texte",
        "> ancien texte\n> encore",
    ],
)
def test_new_text_strips_quoted_history(quote: str) -> None:
    assert new_text(f"Description : nouveau texte\n\n{quote}\n") == "Description : nouveau texte"


def test_content_hash_ignores_trace_headers() -> None:
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    relayed = b"Received: from mx by relay\r\n\tid 42\r\nReturn-Path: <a@example.org>\r\n" + raw
    assert content_hash(raw) == content_hash(relayed)
    assert content_hash(raw) != content_hash(raw.replace(b"body", b"other"))


def test_parse_decodes_iso_8859_1_subject_and_body() -> None:
    raw = (
        b"From: =?iso-8859-1?q?H=E9l=E8ne?= <helene@example.org>\r\n"
        b"Subject: =?iso-8859-1?q?R=E9clamation_urgente?=\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"Tr\xe8s d\xe9\xe7ue.\r\n"
    )
    msg = parse_message(raw)
    assert msg.subject == "Réclamation urgente"
    assert msg.from_name == "Hélène" and msg.from_address == "helene@example.org"
    assert msg.text == "Très déçue."


def _allocate(url: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(url)
    factory = session_factory(engine)
    got = []
    for _ in range(count):
        with factory() as session, session.begin():
            got.append(next_in_sequence(session, "REC-2026"))
    queue.put(got)


def test_numbering_is_sequential_under_concurrency(database_url: str) -> None:
    url = database_url  # SQLite, or PostgreSQL with RECLAMBOT_TEST_DATABASE=postgresql
    ensure_schema(make_engine(url))
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.Process(target=_allocate, args=(url, 40, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    numbers = [n for _ in workers for n in queue.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(numbers) == list(range(1, 121))


def test_composed_email_is_standard_mime(tmp_path: Path) -> None:
    import datetime as dt
    import email
    import email.policy

    from bot.app import build_app
    from bot.config import load_config
    from bot.ops.demo import DEMO_CONFIG
    from bot.outbound.compose import Email, compose
    from bot.outbound.render import Rendered

    (tmp_path / "config.toml").write_text(DEMO_CONFIG, encoding="utf-8")
    app = build_app(load_config(tmp_path / "config.toml"))
    subject = ("Réclamation « reçue » " * 6).strip()
    org = app.config.organisation
    raw = compose(Email("acknowledgement", ["hélène@example.org"], reference="REC-2026-0001",
                        auto_submitted="auto-replied", attachments=[
                            ("registre été.xlsx", "application/octet-stream", b"\x00\x01")]),
                  Rendered(subject, "Très bien reçu.\n" * 50, "<p>Très <b>bien</b></p>"),
                  sender=(org.name, org.bot_address), message_id="<1@example.fr>",
                  now=dt.datetime(2026, 11, 25, 10, 0))
    assert all(line.endswith(b"\r") or not line for line in raw.split(b"\n")[:-1])
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.strict)
    assert msg["Subject"] == subject
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Reclambot"] == "REC-2026-0001"
    assert msg.get_body(("plain",)).get_content() == "Très bien reçu.\n" * 50
    assert msg.get_body(("html",)).get_content() == "<p>Très <b>bien</b></p>"
    [attachment] = msg.iter_attachments()
    assert attachment.get_filename() == "registre été.xlsx"
    assert attachment.get_content() == b"\x00\x01"
    assert not msg.defects
    app.close()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_in_a_terminal_and_silent_in_a_pipe() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with Progress(4, "report", stream) as progress:
            progress.advance()
            progress.update(3, 6)  # the total may grow once the work is known
    shown = terminal.getvalue()
    assert "\rreport [#######" in shown and shown.endswith("3/6\n")
    assert "1/4" in shown
    assert pipe.getvalue() == ""


def test_large_parts_are_lifted_and_restored_exactly() -> None:
    from bot.intake.largeparts import lift
    from bot.testing import samples

    big = samples.pdf_bytes(LARGE_PART + 4096)
    small = b"petite piece jointe"
    raw = samples.form_submission(as_html=True, attachments=[
        ("grand.pdf", "application/pdf", big), ("petit.txt", "text/plain", small),
        ("deuxième grand.bin", "application/octet-stream", big[::-1])])
    skeleton, lifted = lift(raw)
    assert len(lifted) == 2 and len(skeleton) < len(raw) // 10
    message = parse_message(raw)
    assert [(a.filename, a.data) for a in message.attachments] == [
        ("grand.pdf", big), ("petit.txt", small), ("deuxième grand.bin", big[::-1])]
    assert "Nouvelle soumission du formulaire" in message.text
    assert message.content_hash == content_hash(raw)  # of the message as received


def test_lifting_leaves_other_encodings_and_small_messages_alone() -> None:
    from bot.intake.largeparts import lift

    body = b"ligne de texte quoted-printable=3D\r\n" * 40000
    raw = (b'From: a@example.fr\r\nSubject: gros texte\r\nMIME-Version: 1.0\r\n'
           b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
           b'--b1\r\nContent-Type: text/plain; charset=utf-8\r\n'
           b'Content-Transfer-Encoding: quoted-printable\r\n\r\n' + body + b'--b1--\r\n')
    assert lift(raw) == (raw, [])
    small = raw[:2000]
    assert lift(small)[0] is small


@pytest.mark.parametrize("subject", [
    "Réclamation REC-2026-0001 : accusé de réception",
    "Votre réclamation « formation bureautique » a bien été enregistrée — merci 🙂" * 3,
    "é" * 40,
])
def test_encoded_subjects_read_back_and_fold(subject: str) -> None:
    import email
    import email.policy

    from bot.outbound.compose import _header

    line = _header("Subject", subject)
    assert all(len(part) <= 76 for part in line.split(b"\r\n"))
    parsed = email.message_from_bytes(line + b"\r\n", policy=email.policy.default)
    assert parsed["Subject"] == subject


def _corpus(count: int) -> list[bytes]:
    from bench.corpus import corpus

    return [raw for _, raw in corpus(count)] + [b"", b"\r\n\r\n", b"Subject: x\r\n\r\nbody"]


def test_parse_worker_gives_what_parsing_here_gives() -> None:
    from bot.intake.parsing import BatchParser

    datas = _corpus(40)
    here = list(BatchParser(("utf_8", "cp1252"), workers=0).parse(datas))
    parser = BatchParser(("utf_8", "cp1252"), workers=1, threshold=1)
    try:
        parser.start().result()  # else the first batch is parsed here, while it starts
        there = list(parser.parse(datas))
        assert parser._pool is not None  # the worker did the parsing
    finally:
        parser.close()
    assert [m for m in there if not isinstance(m, Exception)] == \
        [m for m in here if not isinstance(m, Exception)]
    assert [repr(e) for e in there if isinstance(e, Exception)] == \
        [repr(e) for e in here if isinstance(e, Exception)] != []


def test_parse_worker_killed_mid_batch_loses_nothing() -> None:
    import os
    import signal

    from bot.intake.parsing import BatchParser

    datas = _corpus(200)  # far more than the worker parses before it is killed
    parser = BatchParser(("utf_8", "cp1252"), workers=1, threshold=1)
    try:
        parser.start().result()
        results = parser.parse(datas)
        first = next(results)
        for pid in list(parser._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        rest = list(results)
        assert parser._pool is None  # dropped; the next large batch starts a new worker
        parser.start().result()
        again = list(parser.parse(datas[:5]))
    finally:
        parser.close()
    here = list(BatchParser(("utf_8", "cp1252"), workers=0).parse(datas))
    assert len([first, *rest]) == len(datas)
    assert [repr(m) for m in [first, *rest]] == [repr(m) for m in here]
    assert [repr(m) for m in again] == [repr(m) for m in here[:5]]


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 114, 115, 4000])
def test_base64_lines_are_those_of_the_stdlib(size: int) -> None:
    import base64
    import random

    from bot.outbound.compose import _base64_lines

    data = random.Random(size).randbytes(size)
    assert _base64_lines(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")


# --- Folder names on each server's namespace ------------------------------------------------


@pytest.mark.parametrize(("prefix", "delimiter", "name", "expected"), [
    ("", "/", "Réclamations/Traitées", "Réclamations/Traitées"),  # Gmail, Exchange
    ("", ".", "Réclamations/Traitées", "Réclamations.Traitées"),  # Dovecot, Maildir++
    ("INBOX.", ".", "Réclamations/Traitées", "INBOX.Réclamations.Traitées"),  # Cyrus, cPanel
    ("INBOX.", ".", "INBOX", "INBOX"),  # the inbox takes no prefix
    ("INBOX.", ".", "inbox/Entrée", "INBOX.Entrée"),  # nor do its children, in any case
    ("", ".", "INBOX/Entrée", "INBOX.Entrée"),
    ("", "/", "/Réclamations//Traitées/", "Réclamations/Traitées"),  # stray slashes
    ("", None, "Réclamations/Traitées", "Réclamations/Traitées"),  # flat: the name as is
])
def test_folder_names_map_onto_the_namespace(prefix: str, delimiter: str | None, name: str,
                                             expected: str) -> None:
    from bot.intake.sources.folders import Namespace

    assert Namespace(prefix, delimiter).server_name(name, "folders.processed") == expected


def test_a_level_with_the_delimiter_is_a_config_error_naming_the_key() -> None:
    from bot.errors import ConfigError
    from bot.intake.sources.folders import Namespace

    with pytest.raises(ConfigError, match=r"folders\.ignored : « Ignorées\.2026 » contient « \. »"):
        Namespace("INBOX.", ".").server_name("Réclamations/Ignorées.2026", "folders.ignored")
    with pytest.raises(ConfigError, match=r"imap\.folder : un nom de dossier vide"):
        Namespace().server_name("/", "imap.folder")
    # On a '/' server the same name is one level with a dot in it: no error.
    assert Namespace("", "/").server_name("A/B.2026", "folders.ignored") == "A/B.2026"


def test_spellings_start_with_the_preferred_name_then_older_ones() -> None:
    from bot.intake.sources.folders import Namespace

    assert Namespace("INBOX.", ".").spellings("Réclamations/Traitées", "k") == [
        "INBOX.Réclamations.Traitées", "Réclamations.Traitées", "Réclamations/Traitées"]
    assert Namespace("", "/").spellings("Réclamations/Traitées", "k") == [
        "Réclamations/Traitées"]


@pytest.mark.parametrize(("answer", "expected"), [
    ((("INBOX.", "."),), ("INBOX.", ".")),
    (((b"", b"/"),), ("", "/")),
    ((("", None),), ("", None)),
    (None, None),
    ((), None),
])
def test_namespace_answer_is_read_from_its_first_personal_entry(
        answer: object, expected: tuple[str, str | None] | None) -> None:
    from bot.intake.sources.folders import parse_namespace

    found = parse_namespace(answer)
    assert (None if found is None else (found.prefix, found.delimiter)) == expected


def test_the_exception_tree_in_the_docstring_is_the_real_one() -> None:
    """bot/errors.py draws its tree; every class of the module is in it, under its parent."""
    import inspect
    import re

    from bot import errors

    classes = {name: cls for name, cls in vars(errors).items()
               if inspect.isclass(cls) and issubclass(cls, Exception)
               and cls.__module__ == "bot.errors"}
    doc = errors.__doc__ or ""
    assert set(classes) <= set(re.findall(r"\b([A-Z]\w+(?:Error|Refused))\b", doc))
    for name, cls in classes.items():
        if name != "ReclambotError":
            assert issubclass(cls, errors.ReclambotError), name


#: Raises of exceptions outside the tree that are part of a protocol, not an error let out:
#: argparse turns ArgumentTypeError into its usage message; an AssertionError is a bug.
#: Raises a library's protocol asks for: argparse's type errors, and SQLAlchemy's pool,
#: which replaces a connection when a checkout listener raises DisconnectionError.
PROTOCOL_RAISES = {("bot/cli.py", "argparse.ArgumentTypeError"), ("*", "AssertionError"),
                   ("bot/store/db.py", "DisconnectionError")}


def _raised_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def test_no_module_raises_anything_outside_the_tree_across_its_boundary() -> None:
    """Every ``raise`` in bot/ names a class of bot/errors.py; a private exception of a
    module is allowed only where the module catches it itself (it never leaves)."""
    import bot
    from bot import errors

    package = Path(bot.__file__).parent
    tree = {name for name, cls in vars(errors).items()
            if isinstance(cls, type) and issubclass(cls, errors.ReclambotError)}
    wrong = []
    for path in sorted(package.rglob("*.py")):
        module = ast.parse(path.read_text(encoding="utf-8"))
        caught = {ast.unparse(h.type) for h in ast.walk(module)
                  if isinstance(h, ast.ExceptHandler) and h.type is not None}
        defined = {c.name for c in ast.walk(module) if isinstance(c, ast.ClassDef)}
        where = str(path.relative_to(package.parent))
        for node in ast.walk(module):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            name = _raised_name(node.exc)
            if not name[:1].isupper() and "." not in name:
                continue  # re-raising a caught exception held in a variable
            if name.split(".")[-1] in tree:
                continue
            if (where, name) in PROTOCOL_RAISES or ("*", name) in PROTOCOL_RAISES:
                continue
            if name in defined and name.startswith("_") and name in caught:
                continue  # private to the module, and caught there
            wrong.append(f"{where}:{node.lineno}: raise {name}")
    assert wrong == []


def test_every_exception_class_of_the_package_is_in_bot_errors() -> None:
    """One tree, drawn where it lives: no module defines its own error class, but a
    private one it catches itself."""
    import bot

    package = Path(bot.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "errors.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    ast.unparse(b).endswith(("Error", "Exception", "Refused")) for b in node.bases):
                found.append(f"{path.name}: {node.name}")
    assert found == []


def test_every_kind_of_email_has_its_three_templates() -> None:
    from bot.ops.check import EMAIL_KINDS
    from bot.outbound.render import Renderer

    kinds = set(Renderer(package_data_dir("templates")).kinds())
    assert set(EMAIL_KINDS) <= kinds


def test_log_lines_are_tagged_with_the_rulebooks_prefixes() -> None:
    """``[references]`` prefixes are data: the log's reference tag follows them."""
    import logging

    from bot.core.logs import TicketFilter, configure, use_references

    configure("text", logging.INFO)
    [flt] = [f for h in logging.getLogger().handlers for f in h.filters
             if isinstance(f, TicketFilter)]
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "registered PLT-2026-0007",
                               None, None)
    flt.filter(record)
    assert record.ticket == ""  # type: ignore[attr-defined]
    use_references("PLT", "CT", "TK")
    flt.filter(record)
    assert record.ticket == "PLT-2026-0007"  # type: ignore[attr-defined]
    use_references("REC", "CT", "TK")


def test_a_line_pattern_finds_what_a_multiline_regex_finds() -> None:
    # The fast search (after each newline) must agree with ``(?im)^…`` everywhere: at the
    # very start, after CRLF and LF, in any case, and never in the middle of a line.
    from bot.core.protocol import LinePattern

    fast = LinePattern(rb"[ \t>]*(?i:x-reclambot):")
    slow = re.compile(rb"(?im)^[ \t>]*x-reclambot:")
    samples_ = [b"X-Reclambot: 1\r\nb", b"a\r\n> x-RECLAMBOT: 2\r\n", b"a X-Reclambot: 3\n",
                b"head\n\nbody\n  X-Reclambot:\n", b"", b"\nX-Reclambot:"]
    for data in samples_:
        assert [s for s, _ in fast.finditer(data)] == [m.start() for m in slow.finditer(data)]
    data = b"X-Reclambot: head\n\nbody\n"
    assert not fast.search(data, data.index(b"body"))  # from the body on: nothing
    assert fast.search(data, 0)
