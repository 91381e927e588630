"""Alerts settings: the ``ALERTS_*`` variables, a section of the router's and the
ingester's settings (both must see the same database); docs/operations.md lists them.
The database defaults to ``.alerts.sqlite3`` beside the shard map
(:func:`database_beside_map`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, model_validator

from federation.core.durations import Duration
from federation.core.settings import DEFAULT_CONFIG, SettingsModel, setting

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs; ValueError naming the one that is not a network."""
    networks: list[Network] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a network (write CIDRs separated by commas)"
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
    raise ValueError(
        f"{scheme!r} databases are not supported (a file path for SQLite, or a postgresql:// URL)"
    )


WINDOW_MIN_S, WINDOW_MAX_S = 60, 86400
WINDOWS_MAX = 8


def parse_windows(text: str) -> tuple[int, ...]:
    """Comma-separated lengths (``15m,1h``) as sorted seconds; ValueError naming the one
    that is not whole minutes from 1m to 24h."""
    found: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            seconds = Duration.parse_length(part).seconds
        except ValueError:
            seconds = 0
        if not WINDOW_MIN_S <= seconds <= WINDOW_MAX_S or seconds % 60:
            raise ValueError(f"{part!r} is not a length of whole minutes from 1m to 24h")
        found.add(int(seconds))
    if not 1 <= len(found) <= WINDOWS_MAX:
        raise ValueError(f"give 1 to {WINDOWS_MAX} windows, separated by commas")
    return tuple(sorted(found))


def _windows(value: object) -> object:
    return parse_windows(value) if isinstance(value, str) else value


def _networks(value: object) -> object:
    return parse_networks(value) if isinstance(value, str) else value


def _database(value: object) -> object:
    return database_url(value) if isinstance(value, str) else value


def _starttls(value: object) -> object:
    if not isinstance(value, str):
        return value
    choices: dict[str, bool | None] = {"auto": None, "true": True, "false": False}
    if value.lower() not in choices:
        raise ValueError(f"{value!r} is not auto, true or false")
    return choices[value.lower()]


class AlertSettings(SettingsModel):
    db_url: Annotated[str, BeforeValidator(_database)] = setting(
        "sqlite+aiosqlite:///.alerts.sqlite3",
        env="ALERTS_DB",
        default_text=".alerts.sqlite3 beside the shard map",
        example="/var/lib/federation/alerts.sqlite3",
        help="SQLite file path, or a database URL (postgresql://user@host/db, sqlite:///path)",
    )
    allow_networks: Annotated[tuple[Network, ...], BeforeValidator(_networks)] = setting(
        (),
        env="ALERTS_ALLOW_NETWORKS",
        example="127.0.0.1/32,10.0.0.0/8",
        help="comma-separated CIDRs that webhooks may target although they are private,"
        " loopback or link-local",
    )
    smtp_host: str = setting("localhost", env="ALERTS_SMTP_HOST", help="the SMTP server")
    smtp_port: int = setting(25, env="ALERTS_SMTP_PORT", ge=1, le=65535, help="its port")
    smtp_from: str = setting("alerts@localhost", env="ALERTS_SMTP_FROM", help="sender address")
    smtp_username: str | None = setting(env="ALERTS_SMTP_USERNAME", help="SMTP login")
    smtp_password: str | None = setting(
        env="ALERTS_SMTP_PASSWORD", secret=True, help="SMTP password"
    )
    # None: use STARTTLS when the server offers it.
    smtp_starttls: Annotated[bool | None, BeforeValidator(_starttls)] = setting(
        env="ALERTS_SMTP_STARTTLS",
        default_text="auto",
        example="auto",
        help="auto (when the server offers it), true or false",
    )
    smtp_tls: bool = setting(
        False, env="ALERTS_SMTP_TLS", help="implicit TLS from the first byte (port 465)"
    )
    delivery_timeout_s: float = setting(
        10.0, env="ALERTS_DELIVERY_TIMEOUT", ge=0.1, le=300, help="seconds one attempt may take"
    )
    retry_base_s: float = setting(
        2.0, env="ALERTS_RETRY_BASE", ge=0.01, le=3600, help="seconds before the first retry"
    )
    retry_max_s: float = setting(
        300.0,
        env="ALERTS_RETRY_MAX",
        ge=0.01,
        le=86400,
        help="longest wait between retries (the wait doubles from ALERTS_RETRY_BASE)",
    )
    give_up_after_s: float = setting(
        86400.0,
        env="ALERTS_GIVE_UP_AFTER",
        ge=1,
        le=30 * 86400,
        help="seconds after which an undelivered alert is marked failed",
    )
    min_points: int = setting(
        1,
        env="ALERTS_MIN_POINTS",
        ge=1,
        le=100_000,
        help="points a window must hold before its mean is trusted",
    )
    windows: Annotated[tuple[int, ...], BeforeValidator(_windows)] = setting(
        (300, 900, 3600, 14400, 86400),
        env="ALERTS_WINDOWS",
        default_text="5m,15m,1h,4h,24h",
        example="15m,1h,24h",
        help="the windows a subscription may use (at most 8): each costs the ingester"
        " ~1.5 KB per series",
    )
    min_factor: float = setting(
        1.5,
        env="ALERTS_MIN_FACTOR",
        ge=1.01,
        le=1000,
        help="the smallest factor a subscription may ask for",
    )
    max_per_key: int = setting(
        100,
        env="ALERTS_MAX_PER_KEY",
        ge=1,
        le=1_000_000,
        help="subscriptions one API key may hold",
    )
    max_subscriptions: int = setting(
        1000,
        env="ALERTS_MAX_SUBSCRIPTIONS",
        ge=1,
        le=1_000_000,
        help="subscriptions in all",
    )
    max_per_minute: int = setting(
        20,
        env="ALERTS_MAX_PER_MINUTE",
        ge=2,
        le=100_000,
        help="alerts one subscription may raise per minute; the excess goes out as one"
        " summary alert",
    )
    poll_interval_s: float = 1.0  # how often the outbox and the subscriptions are looked at
    concurrency: int = 16  # deliveries in flight at once
    retention_s: float = 7 * 86400.0  # delivered and failed events are kept this long

    @model_validator(mode="after")
    def _credentials_over_tls(self) -> AlertSettings:
        if self.smtp_username and self.smtp_starttls is False and not self.smtp_tls:
            raise ValueError(
                "ALERTS_SMTP_USERNAME is set with ALERTS_SMTP_STARTTLS=false and no"
                " ALERTS_SMTP_TLS: credentials would travel in clear; fix: set"
                " ALERTS_SMTP_STARTTLS=auto or ALERTS_SMTP_TLS=true"
            )
        return self

    @property
    def smtp_start_tls(self) -> bool | None:
        """STARTTLS as aiosmtplib takes it: required when credentials are set (they are
        sent only over TLS), off under implicit TLS, else as configured."""
        if self.smtp_tls:
            return False
        return True if self.smtp_username else self.smtp_starttls

    @property
    def lease_s(self) -> float:
        """How long a claimed event stays invisible to other deliverers: well past the
        delivery timeout, so only a deliverer that died lets it come back."""
        return max(60.0, 3 * self.delivery_timeout_s)


def database_beside_map(data: Any) -> Any:
    """The raw values of a model with an ``alerts`` section and a ``config_path``, with
    the alerts database beside the shard map unless one is given (a before-validator
    of the router's and the ingester's settings)."""
    if not isinstance(data, dict):
        return data
    alerts = data.get("alerts", {})
    if isinstance(alerts, dict) and "db_url" not in alerts:
        config = Path(str(data.get("config_path", DEFAULT_CONFIG)))
        alerts = {**alerts, "db_url": str(config.parent / ".alerts.sqlite3")}
        return {**data, "alerts": alerts}
    return data
