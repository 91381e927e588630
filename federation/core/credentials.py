"""Shard credentials: read from the environment once, at start, and sent as HTTP headers.

``INFLUX_TOKEN`` (InfluxDB 2.x/3.x) or ``INFLUX_USERNAME``/``INFLUX_PASSWORD`` (1.x)
apply to every shard; the same names with a ``_<SHARD>`` suffix (name upper-cased, '-'
as '_') apply to one shard and win. Every suffixed variable is kept at load, so a shard
added to shards.yaml later finds its own without the environment being read again.
Credentials never live in shards.yaml.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from federation.core.settings import SettingsModel, setting

_NAMES = ("INFLUX_TOKEN", "INFLUX_USERNAME", "INFLUX_PASSWORD")


class Credentials(SettingsModel):
    token: str | None = setting(
        env="INFLUX_TOKEN",
        secret=True,
        help="token of every shard (2.x/3.x), sent as 'Authorization: Token ...';"
        " INFLUX_TOKEN_<SHARD> for one shard",
    )
    username: str | None = setting(
        env="INFLUX_USERNAME", help="user of every shard (1.x); INFLUX_USERNAME_<SHARD> for one"
    )
    password: str | None = setting(
        env="INFLUX_PASSWORD",
        secret=True,
        help="password of every shard (1.x); INFLUX_PASSWORD_<SHARD> for one",
    )
    # The suffixed variables, by their full names (INFLUX_TOKEN_SHARD_A).
    per_shard: Mapping[str, str] = Field(default_factory=dict, repr=False)

    @classmethod
    def _captured(cls, env: Mapping[str, str]) -> dict[str, Any]:
        prefixes = tuple(name + "_" for name in _NAMES)
        return {"per_shard": {k: v for k, v in env.items() if k.startswith(prefixes) and v}}

    def headers(self, shard: str) -> dict[str, str]:
        """HTTP headers carrying ``shard``'s credentials (none when nothing is set)."""
        suffix = "_" + shard.upper().replace("-", "_")

        def get(name: str, value: str | None) -> str | None:
            return self.per_shard.get(name + suffix) or value

        token = get("INFLUX_TOKEN", self.token)
        if token:
            return {"Authorization": f"Token {token}"}
        user, password = (
            get("INFLUX_USERNAME", self.username),
            get("INFLUX_PASSWORD", self.password),
        )
        if user:
            basic = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}
