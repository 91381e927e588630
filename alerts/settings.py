"""Alerts settings from the environment; a bad value fails at start naming the variable.

ALERTS_DB                 SQLite file path (default ``.alerts.sqlite3`` beside shards.yaml) or a
                          database URL (``postgresql://user@host/db``, ``sqlite:///path``)
ALERTS_ALLOW_NETWORKS     comma-separated CIDRs that webhooks may target although they are
                          private, loopback or link-local (default: none)
ALERTS_SMTP_HOST / _PORT  the SMTP server for email subscriptions (default localhost:25)
ALERTS_SMTP_FROM          the sender address (default alerts@localhost)
ALERTS_SMTP_USERNAME / _PASSWORD, ALERTS_SMTP_STARTTLS (auto|true|false)
ALERTS_DELIVERY_TIMEOUT   seconds one delivery attempt may take (default 10)
ALERTS_RETRY_BASE / _MAX  backoff: first retry after BASE s, doubling up to MAX s (2, 300)
ALERTS_GIVE_UP_AFTER      seconds after which an undelivered alert is marked failed (86400)
ALERTS_MIN_POINTS         points the window must hold before its mean is trusted (default 1)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from federation.core.errors import ConfigError
from federation.core.settings import env_number

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str, var: str = "ALERTS_ALLOW_NETWORKS") -> tuple[Network, ...]:
    networks: list[Network] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{var}: {part.strip()!r} is not a network; "
                f"fix: write CIDRs separated by commas, e.g. {var}=127.0.0.1/32,10.0.0.0/8"
            ) from None
    return tuple(networks)


def database_url(value: str) -> str:
    """An async SQLAlchemy URL from a file path or a plain database URL."""
    if "://" not in value:
        return "sqlite+aiosqlite:///" + str(Path(value).resolve())
    scheme, rest = value.split("://", 1)
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
    }
    if scheme in drivers:
        return f"{drivers[scheme]}://{rest}"
    if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return value
    raise ConfigError(
        f"ALERTS_DB: {scheme!r} databases are not supported; "
        "fix: use a file path (SQLite) or a postgresql:// URL"
    )


def _starttls(env: Mapping[str, str]) -> bool | None:
    text = env.get("ALERTS_SMTP_STARTTLS", "auto").lower()
    choices: dict[str, bool | None] = {"auto": None, "true": True, "false": False}
    if text not in choices:
        raise ConfigError(
            f"ALERTS_SMTP_STARTTLS: {text!r} is not auto, true or false; "
            "fix: set ALERTS_SMTP_STARTTLS=auto"
        )
    return choices[text]


@dataclass(frozen=True)
class AlertSettings:
    db_url: str = "sqlite+aiosqlite:///.alerts.sqlite3"
    allow_networks: tuple[Network, ...] = field(default=())
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "alerts@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool | None = None  # None: use STARTTLS when the server offers it
    delivery_timeout_s: float = 10.0
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    give_up_after_s: float = 86400.0
    poll_interval_s: float = 1.0  # how often the outbox and the subscriptions are looked at
    concurrency: int = 16  # deliveries in flight at once
    min_points: int = 1
    retention_s: float = 7 * 86400.0  # delivered and failed events are kept this long

    @property
    def lease_s(self) -> float:
        """How long a claimed event stays invisible to other deliverers: well past the
        delivery timeout, so only a deliverer that died lets it come back."""
        return max(60.0, 3 * self.delivery_timeout_s)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] = os.environ, *, config_path: str = "shards.yaml"
    ) -> AlertSettings:
        db = env.get("ALERTS_DB") or str(Path(config_path).parent / ".alerts.sqlite3")
        return cls(
            db_url=database_url(db),
            allow_networks=parse_networks(env.get("ALERTS_ALLOW_NETWORKS", "")),
            smtp_host=env.get("ALERTS_SMTP_HOST", "localhost"),
            smtp_port=int(env_number(env, "ALERTS_SMTP_PORT", 25, 1, 65535)),
            smtp_from=env.get("ALERTS_SMTP_FROM", "alerts@localhost"),
            smtp_username=env.get("ALERTS_SMTP_USERNAME") or None,
            smtp_password=env.get("ALERTS_SMTP_PASSWORD") or None,
            smtp_starttls=_starttls(env),
            delivery_timeout_s=env_number(env, "ALERTS_DELIVERY_TIMEOUT", 10.0, 0.1, 300),
            retry_base_s=env_number(env, "ALERTS_RETRY_BASE", 2.0, 0.01, 3600),
            retry_max_s=env_number(env, "ALERTS_RETRY_MAX", 300.0, 0.01, 86400),
            give_up_after_s=env_number(env, "ALERTS_GIVE_UP_AFTER", 86400.0, 1, 30 * 86400),
            min_points=int(env_number(env, "ALERTS_MIN_POINTS", 1, 1, 100_000)),
        )
