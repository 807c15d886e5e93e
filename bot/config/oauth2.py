"""OAuth2 for IMAP and SMTP: the token file, access tokens refreshed on demand, the sign-in.

Microsoft 365 no longer takes passwords for IMAP and SMTP, and Google prefers tokens. The
operator signs in once with ``reclambot auth microsoft|google`` (a device code with msal,
or Google's loopback flow with google-auth-oauthlib); the refresh token is kept in
``[oauth2] token_file``, readable by its owner only. From then on the bot asks the token
endpoint for a short-lived access token whenever the one in the file is about to expire
(the standard refresh grant, through requests-oauthlib) and logs in with SASL XOAUTH2.

The file is the only shared state: the mailbox watcher, the sender and any other command
read it, and refresh under a file lock, so they never refresh twice at once and a rotated
refresh token is never lost. Tokens never reach the log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import OAuth2Config
from bot.errors import OAuth2Error, TokenEndpointError

log = logging.getLogger(__name__)
# requests-oauthlib logs request bodies and token responses (secrets) at DEBUG: never let
# them through, whatever level the process runs at.
for _chatty in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

#: An access token this close to its expiry is renewed before use (seconds).
EXPIRY_MARGIN = 120.0


@dataclass(frozen=True)
class Provider:
    """Where a provider's tokens come from and what IMAP and SMTP need of it."""

    token_url: str
    scopes: tuple[str, ...]


PROVIDERS = {
    "microsoft": Provider(
        token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        scopes=("https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send", "offline_access"),
    ),
    "google": Provider(
        token_url="https://oauth2.googleapis.com/token",
        scopes=("https://mail.google.com/",),
    ),
    "custom": Provider(token_url="", scopes=()),
}


def token_url(config: OAuth2Config) -> str:
    """The token endpoint: configured, or the provider's."""
    return config.token_url or PROVIDERS[config.provider].token_url.format(tenant=config.tenant)


def scopes(config: OAuth2Config) -> tuple[str, ...]:
    """The scopes asked for: configured, or what IMAP and SMTP need at the provider."""
    return config.scopes or PROVIDERS[config.provider].scopes


class TokenFile:
    """The JSON file holding the refresh token (and the current access token), mode 0600."""

    def __init__(self, path: Path, provider: str = "") -> None:
        self.path = path
        self.command = f"reclambot auth {provider}".strip()

    def load(self) -> dict[str, Any]:
        """The saved tokens; an :class:`OAuth2Error` when there are none yet."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OAuth2Error(f"no OAuth2 token in {self.path}: run `{self.command}` "
                              "once to sign in the mailbox") from None
        except (OSError, ValueError) as exc:
            raise OAuth2Error(f"OAuth2 token file {self.path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or not data.get("refresh_token"):
            raise OAuth2Error(f"OAuth2 token file {self.path} holds no refresh token: "
                              f"run `{self.command}` again")
        if self.path.stat().st_mode & 0o077:
            log.warning("OAuth2 token file %s is readable by others: chmod 600 it", self.path)
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file atomically, created readable and writable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise refreshes between the processes and threads sharing the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


class AccessTokens:
    """Hands out a valid access token, refreshing it through the token endpoint when due."""

    def __init__(self, config: OAuth2Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.file = TokenFile(config.token_file, config.provider)
        self.clock = clock

    def get(self, *, renew: bool = False) -> str:
        """An access token valid for a while; ``renew`` when the server refused the last one."""
        data = self.file.load()
        if not renew and self._fresh(data):
            return str(data["access_token"])
        with self.file.locked():
            current = self.file.load()
            # Another process may have renewed it while we waited for the lock.
            if self._fresh(current) and current.get("access_token") != data.get("access_token"):
                return str(current["access_token"])
            refreshed = self._refresh(current)
            self.file.save(refreshed)
            log.info("OAuth2 access token renewed (valid until %s)",
                     time.strftime("%H:%M:%S", time.localtime(refreshed["expires_at"])))
            return str(refreshed["access_token"])

    def _fresh(self, data: dict[str, Any]) -> bool:
        expires_at = float(data.get("expires_at") or 0)
        return bool(data.get("access_token")) and expires_at - EXPIRY_MARGIN > self.clock()

    def _refresh(self, data: dict[str, Any]) -> dict[str, Any]:
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error as ProtocolError
        from requests import RequestException
        from requests_oauthlib import OAuth2Session

        config = self.config
        session = OAuth2Session(config.client_id, scope=list(scopes(config)))
        extra = {"client_secret": config.client_secret.reveal()} if config.client_secret else {}
        try:
            token = session.refresh_token(
                token_url(config), refresh_token=data["refresh_token"], timeout=30,
                verify=str(config.ca_file) if config.ca_file else True,
                client_id=config.client_id, include_client_id=True, **extra)
        except Warning as changed:  # the provider answered with other scopes: still a token
            token = dict(getattr(changed, "token", {}))
        except ProtocolError as exc:
            if exc.status_code and exc.status_code >= 500:
                raise TokenEndpointError(f"OAuth2 token endpoint failed: {exc.error}") from exc
            raise OAuth2Error(
                f"the OAuth2 refresh token was refused ({exc.error}): run "
                f"`reclambot auth {config.provider}` again") from exc
        except RequestException as exc:
            raise TokenEndpointError(
                f"OAuth2 token endpoint unreachable: {type(exc).__name__}") from exc
        finally:
            session.close()
        if not token.get("access_token"):
            raise TokenEndpointError("OAuth2 token endpoint answered without an access token")
        return {
            **data,
            "access_token": token["access_token"],
            # Providers may rotate the refresh token: keep the newest, or the one we had.
            "refresh_token": token.get("refresh_token") or data["refresh_token"],
            "expires_at": self.clock() + float(token.get("expires_in") or 3600),
        }


def token_record(config: OAuth2Config, username: str, refresh_token: str,
                 access_token: str = "", expires_in: float = 0) -> dict[str, Any]:
    """What the token file holds after a sign-in."""
    return {
        "provider": config.provider,
        "client_id": config.client_id,
        "username": username,
        "refresh_token": refresh_token,
        "access_token": access_token,
        "expires_at": time.time() + expires_in if access_token else 0,
    }


def sign_in(config: OAuth2Config, username: str, say: Callable[[str], None]) -> Path:
    """Run the provider's interactive sign-in once and save the refresh token."""
    if config.provider == "microsoft":
        record = _sign_in_microsoft(config, username, say)
    elif config.provider == "google":
        record = _sign_in_google(config, username, say)
    else:
        raise OAuth2Error("provider \"custom\": sign in with your provider's own tool and "
                          f"write its refresh token into {config.token_file} "
                          '({"refresh_token": "..."})')
    TokenFile(config.token_file).save(record)
    return config.token_file


def _sign_in_microsoft(config: OAuth2Config, username: str,
                       say: Callable[[str], None]) -> dict[str, Any]:
    import msal

    app = msal.PublicClientApplication(
        config.client_id, authority=f"https://login.microsoftonline.com/{config.tenant}")
    # msal adds offline_access (a refresh token) itself and refuses it in the list.
    wanted = [s for s in scopes(config) if s not in ("offline_access", "openid", "profile")]
    flow = app.initiate_device_flow(scopes=wanted)
    if "user_code" not in flow:
        raise OAuth2Error(f"Microsoft refused to start the sign-in: "
                          f"{flow.get('error_description') or flow.get('error')}")
    say(flow["message"])
    result = app.acquire_token_by_device_flow(flow)
    if "refresh_token" not in result:
        raise OAuth2Error(f"Microsoft sign-in failed: "
                          f"{result.get('error_description') or result.get('error')}")
    return token_record(config, username, result["refresh_token"], result.get("access_token", ""),
                        float(result.get("expires_in") or 0))


def _sign_in_google(config: OAuth2Config, username: str,
                    say: Callable[[str], None]) -> dict[str, Any]:
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(
        {"installed": {
            "client_id": config.client_id,
            "client_secret": config.client_secret.reveal(),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_url(config),
        }},
        scopes=list(scopes(config)),
    )
    say("Google sign-in: open the link below in a browser of this machine (on a server, "
        "forward the port shown in it with ssh -L first).")
    credentials = flow.run_local_server(
        port=0, open_browser=False, authorization_prompt_message="{url}",
        access_type="offline", prompt="consent", login_hint=username)
    if not credentials.refresh_token:
        raise OAuth2Error("Google returned no refresh token: remove the app's access in "
                          "your Google account and sign in again")
    # google-auth keeps expiry as naive UTC.
    expiry = credentials.expiry.replace(tzinfo=dt.UTC) if credentials.expiry else None
    expires_in = expiry.timestamp() - time.time() if expiry else 0
    return token_record(config, username, credentials.refresh_token, credentials.token or "",
                        max(0.0, expires_in))
