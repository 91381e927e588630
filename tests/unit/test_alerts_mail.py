"""SMTP credentials go only over TLS: against a real (minimal) SMTP server on loopback
that offers AUTH but not STARTTLS, as a downgrading attacker's would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from alerts import mail
from alerts.errors import DeliveryFailed
from alerts.settings import AlertSettings
from federation.core.errors import ConfigError
from tests.alerts import payload

ALERT = payload()


class CleartextSmtp:
    """Offers AUTH PLAIN and no STARTTLS, accepts everything, records every command."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.port = 0

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 plain ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if in_data:
                if text == ".":
                    in_data = False
                    writer.write(b"250 queued\r\n")
                continue
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250-plain\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == "DATA":
                in_data = True
                writer.write(b"354 go on\r\n")
            elif verb == "AUTH":
                writer.write(b"235 welcome\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[CleartextSmtp]:
    smtp = CleartextSmtp()
    listening = await asyncio.start_server(smtp._session, "127.0.0.1", 0)
    smtp.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield smtp


def settings(port: int, **changes: object) -> AlertSettings:
    return AlertSettings(smtp_host="127.0.0.1", smtp_port=port, delivery_timeout_s=5, **changes)  # type: ignore[arg-type]


async def test_credentials_are_not_sent_without_starttls(server: CleartextSmtp) -> None:
    config = settings(server.port, smtp_username="alerts", smtp_password="hunter2-secret")
    with pytest.raises(DeliveryFailed, match=r"(?i)starttls"):
        await mail.send(ALERT, "ops@example.com", config)
    assert [c for c in server.commands if c.upper().startswith(("AUTH", "MAIL"))] == []


async def test_mail_without_credentials_may_go_in_clear(server: CleartextSmtp) -> None:
    await mail.send(ALERT, "ops@example.com", settings(server.port))
    assert any(c.upper().startswith("MAIL FROM") for c in server.commands)


def test_credentials_with_starttls_off_are_refused_at_start() -> None:
    env = {"ALERTS_SMTP_USERNAME": "alerts", "ALERTS_SMTP_STARTTLS": "false"}
    with pytest.raises(ConfigError, match="credentials would travel in clear"):
        AlertSettings.load(env)


@pytest.mark.parametrize(
    ("env", "start_tls"),
    [
        ({}, None),
        ({"ALERTS_SMTP_USERNAME": "alerts"}, True),
        ({"ALERTS_SMTP_USERNAME": "alerts", "ALERTS_SMTP_TLS": "true"}, False),
        ({"ALERTS_SMTP_STARTTLS": "false"}, False),
    ],
    ids=["auto", "credentials-require-it", "implicit-tls", "off-without-credentials"],
)
def test_starttls_is_required_with_credentials(env: dict[str, str], start_tls: bool | None) -> None:
    assert AlertSettings.load(env).smtp_start_tls is start_tls


def test_summary_alert_says_how_many_it_stands_for() -> None:
    text = mail.message({**ALERT, "suppressed": 41}, "a@example.com", "b@example.com").as_string()
    assert "41 more alerts" in text
