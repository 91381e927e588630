"""Router settings from the environment; a bad value fails at start naming the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from federation.exceptions import ConfigError
from federation.influxql import Duration


@dataclass(frozen=True)
class Settings:
    config_path: str = "shards.yaml"
    shard_timeout: float = 10.0  # seconds one shard may take for one query
    # The longest window a query may ask for (Duration is frozen: sharing it is safe).
    max_duration: Duration = Duration(30, "d")  # noqa: RUF009

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        defaults = cls()
        timeout_text = env.get("FEDERATION_SHARD_TIMEOUT", str(defaults.shard_timeout))
        try:
            timeout = float(timeout_text)
            if not 0 < timeout <= 600:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"FEDERATION_SHARD_TIMEOUT: {timeout_text!r} is not a number of seconds "
                "between 0 and 600; fix: set e.g. FEDERATION_SHARD_TIMEOUT=10"
            ) from None
        max_text = env.get("FEDERATION_MAX_DURATION", str(defaults.max_duration))
        try:
            max_duration = Duration.parse(max_text)
        except ValueError as exc:
            raise ConfigError(
                f"FEDERATION_MAX_DURATION: {exc}; fix: set e.g. FEDERATION_MAX_DURATION=-30d"
            ) from None
        return cls(
            config_path=env.get("FEDERATION_CONFIG", defaults.config_path),
            shard_timeout=timeout,
            max_duration=max_duration,
        )
