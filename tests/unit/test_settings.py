from __future__ import annotations

import pytest

from federation.core.errors import ConfigError
from federation.router.settings import Settings


def test_settings_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert (settings.shard_timeout, settings.rank_refresh_s, str(settings.max_duration)) == (
        10.0,
        60.0,
        "-30d",
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FEDERATION_SHARD_TIMEOUT": "soon"}, "FEDERATION_SHARD_TIMEOUT"),
        ({"FEDERATION_SHARD_TIMEOUT": "0"}, "FEDERATION_SHARD_TIMEOUT"),
        ({"FEDERATION_DEADLINE": "-1"}, "FEDERATION_DEADLINE"),
        ({"FEDERATION_RANK_REFRESH": "0.5"}, "FEDERATION_RANK_REFRESH"),
        ({"FEDERATION_RELOAD_CHECK": "nan"}, "FEDERATION_RELOAD_CHECK"),
        ({"FEDERATION_MAX_DURATION": "30d"}, "FEDERATION_MAX_DURATION"),
    ],
    ids=[
        "not-a-number",
        "zero-timeout",
        "negative-deadline",
        "refresh-below-1s",
        "nan",
        "duration-without-minus",
    ],
)
def test_settings_bad_value_names_variable_and_fix(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: .*fix: ") as info:
        Settings.from_env(env)
    assert name in str(info.value)


def test_settings_rank_refresh_zero_means_per_request() -> None:
    assert Settings.from_env({"FEDERATION_RANK_REFRESH": "0"}).rank_refresh_s == 0
