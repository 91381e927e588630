"""One email delivery through the configured SMTP server (aiosmtplib).

Credentials go only over TLS: with ``ALERTS_SMTP_USERNAME`` set, STARTTLS is required
(a server that does not offer it fails the attempt before any login) unless the
connection is TLS from the start (``ALERTS_SMTP_TLS``).

The message carries the alert in words and as JSON, and the event id twice: in
``X-Alert-Event-Id`` and in a ``Message-ID`` derived from it, so a retried alert is
the same message to mail software that de-duplicates.
"""

from __future__ import annotations

import asyncio
import json
from email.message import EmailMessage

import aiosmtplib

from alerts.errors import DeliveryFailed
from alerts.settings import AlertSettings
from alerts.types import AlertPayload


def message(alert: AlertPayload, sender: str, recipient: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = (
        f"Alert: {alert['pair']} on {alert['exchange']}: {alert['metric']} "
        f"{alert['ratio']:.2f}x its {alert['window']} mean"
    )
    msg["Message-ID"] = f"<{alert['event_id']}@crypto-federation.alerts>"
    msg["X-Alert-Event-Id"] = alert["event_id"]
    msg["X-Alert-Subscription-Id"] = alert["subscription_id"]
    msg.set_content(
        f"{alert['metric']} of {alert['pair']} on {alert['exchange']} was {alert['value']:g} "
        f"at {alert['time']}, {alert['ratio']:.2f} times its mean of {alert['mean']:g} over "
        f"the last {alert['window']} (your threshold: {alert['factor']:g}x).\n\n"
        + (
            f"{alert['suppressed']} more alerts of this subscription in the same minute"
            " were folded into this one (the per-minute limit).\n\n"
            if "suppressed" in alert
            else ""
        )
        + f"{json.dumps(alert, indent=2)}\n"
    )
    return msg


async def send(alert: AlertPayload, recipient: str, settings: AlertSettings) -> None:
    """Send the alert; raises DeliveryFailed (``permanent`` when the server refused the
    recipient for good, a 5xx)."""
    try:
        async with asyncio.timeout(settings.delivery_timeout_s):  # the whole conversation
            await aiosmtplib.send(
                message(alert, settings.smtp_from, recipient),
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                use_tls=settings.smtp_tls,
                start_tls=settings.smtp_start_tls,
                timeout=settings.delivery_timeout_s,
            )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        permanent = all(500 <= r.code < 600 for r in exc.recipients)
        raise DeliveryFailed(f"SMTP refused {recipient}: {exc}", permanent=permanent) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryFailed(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from None
