"""TLS is the default: verified against the system store, or a configured CA file."""

from __future__ import annotations

import ssl

import pytest

from bot.errors import SourceError
from bot.testing import samples
from tests.conftest import BotEnv
from tests.servers import SmtpCapture, free_port, self_signed_certificate

pytestmark = pytest.mark.integration


def use_imap(env: BotEnv, security: str, port: int, ca_file: str | None) -> None:
    text = env.config_path.read_text()
    text = text.replace(f"port = {env.server.port}\nsecurity = \"none\"",
                        f"port = {port}\nsecurity = \"{security}\"")
    if ca_file:
        text = text.replace('password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"',
                            f'password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"\nca_file = "{ca_file}"')
    env.config_path.write_text(text)
    env.restart()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_imap_tls_with_the_configured_ca(env: BotEnv, security: str) -> None:
    port = env.server.tls_port if security == "ssl" else env.server.port
    use_imap(env, security, port, str(env.server.ca_file))
    env.append(samples.form_submission())
    env.run()
    assert len(env.complaints()) == 1


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_imap_tls_refused_without_the_ca(env: BotEnv, security: str) -> None:
    port = env.server.tls_port if security == "ssl" else env.server.port
    use_imap(env, security, port, None)
    env.append(samples.form_submission())
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
        env.run()
    assert env.complaints() == []


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_smtp_tls_with_the_configured_ca(env: BotEnv, tmp_path, security: str) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    cert = self_signed_certificate(tmp_path / "smtp-tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cert.parent / "key.pem")
    handler = SmtpCapture()
    port = free_port()
    if security == "ssl":
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True)
    controller.start()
    try:
        text = env.config_path.read_text().replace(
            f"port = {env.smtp.port}\nsecurity = \"none\"",
            f"port = {port}\nsecurity = \"{security}\"\nca_file = \"{cert}\"")
        env.config_path.write_text(text)
        env.restart()
        env.append(samples.form_submission())
        env.run()
        assert len(handler.received) == 2
    finally:
        controller.stop()
