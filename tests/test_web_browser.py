"""The web form in a real browser (Debian's Chromium, driven by Playwright; no browser is
downloaded), served by uvicorn as ``reclambot serve`` does, the acknowledgement sent to
the test SMTP server. Screenshots are kept in the test's temporary folder."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.config import load_config
from bot.outbound.sinks import make_sink
from bot.store.models import Complaint
from bot.web.server import make_web_app
from tests.conftest import write_config
from tests.servers import SmtpServer, free_port
from tests.test_emails import CHROMIUM, DESKTOP, PHONE

pytestmark = pytest.mark.integration

CLIENT = "jeanne.martin@example.org"


class Served:
    """uvicorn serving one organisation's form on a free loopback port."""

    def __init__(self, app: App, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(make_web_app(app, lambda: make_sink(app.config)),
                                host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture()
def served(tmp_path: Path, smtp: SmtpServer, database_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Served, App]]:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (scripts/test.sh installs Debian's chromium)")
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    port = free_port()
    config = write_config(tmp_path, imap_port=1, imap_user="web", smtp_port=smtp.port,
                          database_url=database_url,
                          extra=f'[web]\nlisten = "127.0.0.1:{port}"\n'
                                f'public_url = "http://127.0.0.1:{port}"\n')
    app = build_app(load_config(config, mailbox_secrets=False))
    with Served(app, port) as server:
        yield server, app
    app.close()


def tab_to(page: Any, target: str, limit: int = 80) -> None:
    """Press Tab until the element with id ``target`` has the focus: it is reachable
    with the keyboard alone."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == target:
            return
    raise AssertionError(f"#{target} cannot be reached with Tab")


def _fill_by_keyboard(page: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        tab_to(page, key)
        page.keyboard.press("Control+A")
        page.keyboard.type(value)


def _send(page: Any) -> None:
    """Reach the button with Tab and press Enter: the next page is loaded."""
    tab_to(page, "envoyer")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _look(page: Any, seen: dict[str, Any], path: Path) -> None:
    """Note how wide the page is, and keep its screenshot."""
    seen.setdefault("wide", []).append(page.evaluate("document.documentElement.scrollWidth"))
    page.screenshot(path=str(path), full_page=True)


def _browse(url: str, width: int, screens: Path, smtp: SmtpServer) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900},
                                    java_script_enabled=False)
            page.goto(f"{url}/reclamation")
            _look(page, seen, screens / f"1-formulaire-{width}.png")
            # Incomplete, from the keyboard: a name and an address, then the button.
            _fill_by_keyboard(page, {"client_name": "Jeanne Martin", "email": CLIENT})
            _send(page)
            seen["errors"] = page.locator(".resume li").all_inner_texts()
            _look(page, seen, screens / f"2-erreurs-{width}.png")
            # Completed from the keyboard: texts, a choice with the arrows, the consent
            # with the space bar.
            _fill_by_keyboard(page, {
                "object": "Attestation non reçue", "product": "Convention n° 2026-114",
                "training_actions": "Sophrologie (septembre)",
                "description": "Toujours pas d'attestation après deux relances."})
            tab_to(page, "category-1")
            for _ in range(3):
                page.keyboard.press("ArrowDown")  # prospect → … → stagiaire
            tab_to(page, "gdpr_consent")
            page.keyboard.press("Space")
            _send(page)
            seen["confirmation"] = page.locator("main").inner_text()
            _look(page, seen, screens / f"3-enregistree-{width}.png")
            # The acknowledgement, at the SMTP server; its follow-up link, opened.
            deadline = time.monotonic() + 15
            while not smtp.handler.to(CLIENT) and time.monotonic() < deadline:
                time.sleep(0.05)
            [ack] = smtp.handler.to(CLIENT)
            link = re.search(rf"{re.escape(url)}/suivi/\S+", ack.text())
            assert link is not None, ack.text()
            page.goto(link.group(0))
            seen["follow_up"] = page.locator("main").inner_text()
            _look(page, seen, screens / f"4-suivi-{width}.png")
        finally:
            browser.close()
    return seen


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_the_form_from_the_keyboard_to_the_follow_up_page(
        served: tuple[Served, App], smtp: SmtpServer, tmp_path: Path, width: int) -> None:
    server, app = served
    screens = tmp_path / "screens"
    screens.mkdir()
    with ThreadPoolExecutor(max_workers=1) as worker:  # Playwright's loop in its own thread
        seen = worker.submit(_browse, server.url, width, screens, smtp).result()
    assert len(seen["errors"]) >= 6, seen["errors"]
    assert any("Description" in e and "information manquante" in e for e in seen["errors"])
    [complaint] = _complaints(app)
    assert f"Son numéro est {complaint.number}" in seen["confirmation"]
    assert complaint.category == "stagiaire" and complaint.client_email == CLIENT
    assert complaint.number in seen["follow_up"] and "en cours" in seen["follow_up"]
    assert max(seen["wide"]) <= width, seen["wide"]  # no sideways scroll, phone included
    assert len(list(screens.glob("*.png"))) == 4


def _complaints(app: App) -> list[Complaint]:
    from sqlalchemy import select

    with app.sessions() as session:
        return list(session.scalars(select(Complaint)))
