"""A small OAuth2 authorisation server for the tests, on loopback.

Two endpoints, sharing one state:
- the token endpoint (HTTPS, self-signed certificate): the refresh grant of RFC 6749 §6,
  rotating the refresh token as Microsoft does;
- the token-introspection endpoint (RFC 7662, plain HTTP, for Dovecot's ``oauth2``
  passdb and the test SMTP server): is this access token active, and whose is it.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.servers import self_signed_certificate

CLIENT_ID = "reclambot-test-client"
CLIENT_SECRET = "test-client-secret"


class OAuthServer:
    """Issues, refreshes, checks and revokes tokens; counts what it was asked."""

    def __init__(self, folder: Path) -> None:
        self.lock = threading.Lock()
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.access_tokens: dict[str, str] = {}  # access token -> user
        self.refreshes = 0
        self.introspections = 0
        self.expires_in = 3600
        self.ca_file = self_signed_certificate(folder)
        self._servers = [self._serve(tls=True), self._serve(tls=False)]
        self.token_url = f"https://127.0.0.1:{self._servers[0].server_port}/token"
        self.introspection_url = f"http://127.0.0.1:{self._servers[1].server_port}/introspect"

    def issue_refresh_token(self, user: str) -> str:
        """What a sign-in would have given the bot."""
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = user
        return token

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def user_of(self, access_token: str) -> str | None:
        """The introspection: whose active token this is, or None."""
        with self.lock:
            self.introspections += 1
            return self.access_tokens.get(access_token)

    def refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer to a refresh request."""
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        with self.lock:
            user = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if user is None:
                return 400, {"error": "invalid_grant",
                             "error_description": "refresh token unknown or revoked"}
            self.refreshes += 1
            access, rotated = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self.access_tokens[access] = user
            self.refresh_tokens[rotated] = user
        return 200, {"access_token": access, "token_type": "Bearer",
                     "expires_in": self.expires_in, "refresh_token": rotated,
                     "scope": form.get("scope", "")}

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _serve(self, tls: bool) -> ThreadingHTTPServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path == "/token" and tls:
                    status, answer = state.refresh(form)
                elif self.path == "/introspect" and not tls:
                    user = state.user_of(form.get("token", ""))
                    status, answer = 200, (
                        {"active": True, "username": user} if user else {"active": False})
                else:
                    status, answer = 404, {"error": "not_found"}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass  # quiet: the tests look at the counters instead

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca_file, self.ca_file.parent / "key.pem")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
