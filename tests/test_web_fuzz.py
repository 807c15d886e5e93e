"""No bare 500 and no traceback, whatever is posted: random Unicode, bytes, CR/LF, encoded
words and bidi controls in every field, header and cookie of every route of
``reclambot serve`` (hypothesis; Starlette's client, the in-memory mailbox)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MemoryEnv
from tests.test_web import COMPLETE, WEB, Web

#: What people and attackers send: any text, line breaks of every kind, encoded words,
#: bidi and invisible controls, NUL, long runs.
NASTY = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x00", "\u202e",
                     "\u2066", "\u200b", "=?utf-8?b?w6k=?=", "=?x?q?=0D=0ABcc:a@b?=",
                     "Adresse e-mail : victime@example.org", "é" * 70000, "%00", "../..",
                     "<script>", "'; DROP TABLE complaints;--", "josé@exémple.fr"]),
    st.lists(st.sampled_from(["a", "\r\n", "é", "\u2028", ":", " ", "\ud7ff"]),
             max_size=50).map("".join),
)
LATIN1 = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=200)
KEYS = [*COMPLETE, "csrf", "form_version", "reference", "reference_sig", "site_web",
        "origine"]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    mp = pytest.MonkeyPatch()
    mp.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    env = MemoryEnv(directory, f"sqlite:///{directory / 'register.sqlite3'}",
                    extra=WEB.replace("submissions_per_ip_per_hour = 6",
                                      "submissions_per_ip_per_hour = 100000"))
    yield Web(env)
    env.close()
    mp.undo()


def no_bare_500(answer: object, caplog: pytest.LogCaptureFixture) -> None:
    status = answer.status_code  # type: ignore[attr-defined]
    assert status != 500 or "Erreur du serveur" in answer.text  # type: ignore[attr-defined]
    assert status < 500, (status, answer.text[:300])  # type: ignore[attr-defined]
    assert "Traceback" not in answer.text  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(KEYS), NASTY, max_size=12), real=st.booleans())
def test_posting_anything_to_the_form_answers_a_page(
        web: Web, caplog: pytest.LogCaptureFixture, fields: dict[str, str], real: bool) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        data = {**COMPLETE, **fields}
        if real:
            data.setdefault("csrf", web.token())
            data["csrf"] = web.token() if "csrf" not in fields else data["csrf"]
        encoded = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                   for k, v in data.items()}
        answer = web.client.post("/reclamation", data=encoded, follow_redirects=False)
    no_bare_500(answer, caplog)


@FUZZ
@given(path=NASTY, query=NASTY, header=LATIN1, cookie=LATIN1)
def test_getting_anything_answers_a_page(web: Web, caplog: pytest.LogCaptureFixture,
                                         path: str, query: str, header: str,
                                         cookie: str) -> None:
    caplog.clear()
    # Percent-encoded as a client must send them (raw control bytes never make a
    # request line); decoded, the application sees them all.
    safe = quote(path.encode("utf-8", "surrogatepass"), safe="")[:3000]
    asked = quote(query.encode("utf-8", "surrogatepass"), safe="")[:3000]
    for url in (f"/suivi/{safe}", f"/reclamation?ref={asked}&sig={safe}", f"/{safe}",
                f"/reclamation?{asked}", f"/suivi/REC-2026-0001.{safe}"):
        with caplog.at_level(logging.INFO):
            answer = web.client.get(url, headers={
                b"x-forwarded-for": header.encode("latin-1"),  # type: ignore[dict-item]
                b"cookie": ("__Host-reclambot_csrf=" + cookie).encode("latin-1"),
                b"user-agent": header.encode("latin-1")})
        no_bare_500(answer, caplog)


@FUZZ
@given(body=st.binary(max_size=2000), kind=st.sampled_from([
    "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
    "multipart/form-data", "text/plain", "multipart/form-data; boundary=\u00e9"]))
def test_posting_any_bytes_answers_a_page(web: Web, caplog: pytest.LogCaptureFixture,
                                          body: bytes, kind: str) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        answer = web.client.post("/reclamation", content=body, headers={
            b"content-type": kind.encode("utf-8")}, follow_redirects=False)  # type: ignore[dict-item]
    no_bare_500(answer, caplog)
