"""Router settings from the environment; a bad value fails at start naming the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from federation.core.durations import Duration
from federation.core.errors import ConfigError
from federation.core.settings import env_number


@dataclass(frozen=True)
class Settings:
    config_path: str = "shards.yaml"
    shard_timeout: float = 10.0  # seconds one shard may take for one query (or one chunk)
    deadline_s: float = 30.0  # seconds a whole answer may take; later shards are missing
    rank_refresh_s: float = 60.0  # how often the rank table is rebuilt; 0: rank per request
    reload_check_s: float = 5.0  # how often shards.yaml is checked for changes (and on SIGHUP)
    spool_dir: str | None = None  # the ingester's spool on this host; default: .spool by the map
    # The longest window a query may ask for (Duration is frozen: sharing it is safe).
    max_duration: Duration = Duration(30, "d")  # noqa: RUF009

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        defaults = cls()
        max_text = env.get("FEDERATION_MAX_DURATION", str(defaults.max_duration))
        try:
            max_duration = Duration.parse(max_text)
        except ValueError as exc:
            raise ConfigError(
                f"FEDERATION_MAX_DURATION: {exc}; fix: set e.g. FEDERATION_MAX_DURATION=-30d"
            ) from None
        refresh = env_number(env, "FEDERATION_RANK_REFRESH", defaults.rank_refresh_s, 0, 86400)
        if 0 < refresh < 1:
            raise ConfigError("FEDERATION_RANK_REFRESH: below 1 second; fix: 0 (off) or at least 1")
        return cls(
            config_path=env.get("FEDERATION_CONFIG", defaults.config_path),
            spool_dir=env.get("FEDERATION_SPOOL_DIR"),
            shard_timeout=env_number(
                env, "FEDERATION_SHARD_TIMEOUT", defaults.shard_timeout, 0.01, 600
            ),
            deadline_s=env_number(env, "FEDERATION_DEADLINE", defaults.deadline_s, 0.01, 3600),
            rank_refresh_s=refresh,
            reload_check_s=env_number(
                env, "FEDERATION_RELOAD_CHECK", defaults.reload_check_s, 0.1, 3600
            ),
            max_duration=max_duration,
        )
