"""OAuth2 (SASL XOAUTH2) for IMAP and SMTP, against Dovecot's oauth2 passdb and aiosmtpd.

The tokens come from the local authorisation server of ``tests/oauth_server.py``: the bot
refreshes them there (HTTPS, the test CA), Dovecot and the SMTP server check them there.
"""

from __future__ import annotations

import json
import logging
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bot.cli import main
from bot.config import OAuth2Config, Secret
from bot.config.oauth2 import AccessTokens, TokenFile, sign_in
from bot.testing import samples
from tests.conftest import DIRECTOR, BotEnv
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.servers import (
    Dovecot,
    SmtpServer,
    XOAuth2SmtpCapture,
    self_signed_certificate,
    start_dovecot,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    server = OAuthServer(tmp_path_factory.mktemp("oauth-tls"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dovecot_oauth(oauth: OAuthServer) -> Iterator[Dovecot]:
    server = start_dovecot(introspection_url=oauth.introspection_url)
    yield server
    server.stop()


@pytest.fixture()
def smtp_oauth(oauth: OAuthServer, tmp_path: Path) -> Iterator[SmtpServer]:
    """Submission as Microsoft 365 and Google run it: STARTTLS, then XOAUTH2 only."""
    cert = self_signed_certificate(tmp_path / "smtp-tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cert.parent / "key.pem")
    server = SmtpServer(XOAuth2SmtpCapture(user_of=oauth.user_of), tls_context=context,
                        require_starttls=True, auth_required=True,
                        auth_exclude_mechanism=["LOGIN", "PLAIN"])
    yield server
    server.stop()


@pytest.fixture()
def oauth_env(tmp_path: Path, dovecot_oauth: Dovecot, smtp_oauth: SmtpServer,
              oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch,
              database_url: str) -> Iterator[BotEnv]:
    """A bot whose config has no password at all: IMAP and SMTP log in with tokens."""
    env = BotEnv(tmp_path, dovecot_oauth, smtp_oauth, monkeypatch, database_url)
    text = env.config_path.read_text(encoding="utf-8")
    text = text.replace(
        f'port = {dovecot_oauth.port}\nsecurity = "none"',
        f'port = {dovecot_oauth.tls_port}\nsecurity = "ssl"\nca_file = "{dovecot_oauth.ca_file}"',
    ).replace('password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"', 'auth = "oauth2"').replace(
        f'port = {smtp_oauth.port}\nsecurity = "none"',
        f'port = {smtp_oauth.port}\nsecurity = "starttls"\n'
        f'ca_file = "{tmp_path / "smtp-tls" / "cert.pem"}"\n'
        f'username = "{env.user}"\nauth = "oauth2"',
    )
    assert "password" not in text
    text += f"""
[oauth2]
provider = "google"
client_id = "{CLIENT_ID}"
client_secret_env = "RECLAMBOT_TEST_OAUTH2_SECRET"
token_url = "{oauth.token_url}"
ca_file = "{oauth.ca_file}"
token_file = "secrets/oauth2-token.json"
"""
    env.config_path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("RECLAMBOT_TEST_OAUTH2_SECRET", CLIENT_SECRET)
    # What `reclambot auth google` leaves: a refresh token, no valid access token yet.
    TokenFile(tmp_path / "secrets" / "oauth2-token.json").save(
        {"provider": "google", "username": env.user,
         "refresh_token": oauth.issue_refresh_token(env.user)})
    yield env
    env.close()


def token_file(env: BotEnv) -> dict[str, Any]:
    return json.loads((env.directory / "secrets" / "oauth2-token.json").read_text())


def test_imap_and_smtp_log_in_with_refreshed_tokens(
        oauth_env: BotEnv, oauth: OAuthServer, smtp_oauth: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first_refresh_token = token_file(oauth_env)["refresh_token"]
    refreshes, introspections = oauth.refreshes, oauth.introspections
    oauth_env.append(samples.form_submission())

    oauth_env.run()

    assert len(oauth_env.complaints()) == 1
    # Acknowledgement and the director's notification, over an XOAUTH2 session.
    assert len(smtp_oauth.handler.received) == 2
    assert smtp_oauth.handler.to(DIRECTOR)
    assert smtp_oauth.handler.logins == [oauth_env.user]  # type: ignore[attr-defined]
    # Dovecot asked whether the token was the user's: IMAP used it too.
    assert oauth.introspections > introspections
    # One refresh for both: the sender used the token the watcher had just saved.
    assert oauth.refreshes == refreshes + 1
    saved = token_file(oauth_env)
    assert saved["refresh_token"] != first_refresh_token  # rotated, and kept
    assert saved["access_token"] in oauth.access_tokens
    path = oauth_env.directory / "secrets" / "oauth2-token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets = (saved["access_token"], saved["refresh_token"], first_refresh_token, CLIENT_SECRET)
    assert not any(secret in caplog.text for secret in secrets)


def test_a_revoked_access_token_is_renewed_once(
        oauth_env: BotEnv, oauth: OAuthServer, smtp_oauth: SmtpServer) -> None:
    oauth_env.append(samples.form_submission())
    oauth_env.run()
    refreshes = oauth.refreshes
    oauth.revoke_access_tokens()  # still "valid" in the file, refused by the servers
    oauth_env.restart()
    oauth_env.append(samples.form_submission(subject="Deuxième réclamation"))

    oauth_env.run()

    assert len(oauth_env.complaints()) == 2
    assert len(smtp_oauth.handler.received) == 4
    assert oauth.refreshes == refreshes + 1


def test_a_refused_refresh_token_stops_with_a_clear_error(
        oauth_env: BotEnv, oauth: OAuthServer, capsys: pytest.CaptureFixture[str]) -> None:
    oauth_env.append(samples.form_submission())
    oauth.revoke_refresh_tokens()

    assert main(["--config", str(oauth_env.config_path), "run", "--once"]) == 2

    err = capsys.readouterr().err
    assert "refresh token was refused (invalid_grant)" in err
    assert "reclambot auth google" in err and "Traceback" not in err
    assert oauth_env.complaints() == []
    assert len(oauth_env.folder("INBOX")) == 1  # nothing lost: it waits for the new sign-in


def test_missing_token_file_says_to_sign_in(oauth_env: BotEnv,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (oauth_env.directory / "secrets" / "oauth2-token.json").unlink()
    assert main(["--config", str(oauth_env.config_path), "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert "no OAuth2 token in" in err and "reclambot auth" in err
    from bot.errors import OAuth2Error
    from bot.outbound.sinks import make_sink

    with pytest.raises(OAuth2Error, match="no OAuth2 token"), \
            make_sink(oauth_env.config).connect():
        pass


def test_concurrent_users_of_the_file_refresh_once(oauth_env: BotEnv,
                                                   oauth: OAuthServer) -> None:
    import threading

    config = oauth_env.config.oauth2
    assert config is not None
    refreshes = oauth.refreshes
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(AccessTokens(config).get()))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert oauth.refreshes == refreshes + 1
    assert len(set(tokens)) == 1 and tokens[0] in oauth.access_tokens


class FakeMsal:
    """msal.PublicClientApplication as far as the device-code sign-in uses it."""

    seen: ClassVar[dict[str, Any]] = {}

    def __init__(self, client_id: str, authority: str) -> None:
        FakeMsal.seen.update(client_id=client_id, authority=authority)

    def initiate_device_flow(self, scopes: list[str]) -> dict[str, Any]:
        FakeMsal.seen["scopes"] = scopes
        return {"user_code": "ABCD-EFGH", "message": "Go to https://microsoft.com/devicelogin "
                                                    "and enter ABCD-EFGH"}

    def acquire_token_by_device_flow(self, flow: dict[str, Any]) -> dict[str, Any]:
        return {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3599}


def test_microsoft_device_code_sign_in_saves_a_private_token_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import msal

    monkeypatch.setattr(msal, "PublicClientApplication", FakeMsal)
    config = OAuth2Config(provider="microsoft", client_id="app-id", tenant="example.fr",
                          token_file=tmp_path / "state" / "token.json",
                          client_secret=Secret(""))
    said: list[str] = []
    path = sign_in(config, "reclamations@example.fr", said.append)
    assert said == ["Go to https://microsoft.com/devicelogin and enter ABCD-EFGH"]
    assert FakeMsal.seen["authority"] == "https://login.microsoftonline.com/example.fr"
    # msal refuses offline_access in the list: it asks for a refresh token itself.
    assert FakeMsal.seen["scopes"] == ["https://outlook.office.com/IMAP.AccessAsUser.All",
                                       "https://outlook.office.com/SMTP.Send"]
    saved = json.loads(path.read_text())
    assert (saved["refresh_token"], saved["username"]) == ("rt-1", "reclamations@example.fr")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_check_renews_the_token_and_logs_in(oauth_env: BotEnv, oauth: OAuthServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(oauth_env.config_path), "check"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["oauth2"].startswith("OK")
    assert f"connecté en tant que {oauth_env.user} (google)" in lines["oauth2"]
    assert lines["mailbox"].startswith("OK") and lines["sending"].startswith("OK")
    assert oauth_env.user in lines["mailbox"]


def test_auth_command_checks_the_provider(oauth_env: BotEnv,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(oauth_env.config_path), "auth", "microsoft"]) == 2
    assert "config : oauth2.provider : vaut 'google', pas 'microsoft'" in capsys.readouterr().err


class FakeGoogleFlow:
    """google_auth_oauthlib's InstalledAppFlow as far as the loopback sign-in uses it."""

    seen: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_client_config(cls, config: dict[str, Any], scopes: list[str]) -> FakeGoogleFlow:
        cls.seen.update(config=config, scopes=scopes)
        return cls()

    def run_local_server(self, **options: Any) -> Any:
        import datetime as dt
        from types import SimpleNamespace

        FakeGoogleFlow.seen["options"] = options
        expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=3599)
        return SimpleNamespace(refresh_token="g-rt", token="g-at", expiry=expiry)


def test_google_loopback_sign_in_saves_a_private_token_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import google_auth_oauthlib.flow

    monkeypatch.setattr(google_auth_oauthlib.flow, "InstalledAppFlow", FakeGoogleFlow)
    config = OAuth2Config(provider="google", client_id="desktop-id", token_file=tmp_path / "t.json",
                          client_secret=Secret("desktop-secret"))
    said: list[str] = []
    path = sign_in(config, "reclamations@example.fr", said.append)
    installed = FakeGoogleFlow.seen["config"]["installed"]
    assert (installed["client_id"], installed["client_secret"]) == ("desktop-id", "desktop-secret")
    assert installed["token_uri"] == "https://oauth2.googleapis.com/token"
    assert FakeGoogleFlow.seen["scopes"] == ["https://mail.google.com/"]
    # A refresh token is only given with offline access; the browser is the operator's.
    options = FakeGoogleFlow.seen["options"]
    assert options["access_type"] == "offline" and options["open_browser"] is False
    assert options["login_hint"] == "reclamations@example.fr"
    assert said and "ssh -L" in said[0]
    saved = json.loads(path.read_text())
    assert (saved["refresh_token"], saved["access_token"]) == ("g-rt", "g-at")
    assert 3500 < saved["expires_at"] - time.time() < 3600  # expiry read as UTC
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
