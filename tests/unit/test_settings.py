"""Settings models: built from plain values, or loaded from an environment and flags with
every problem in one ConfigError naming the variable or flag and the fix."""

from __future__ import annotations

import pydantic
import pytest

from federation.core.durations import Duration
from federation.core.errors import ConfigError
from federation.router.settings import RouterSettings


def test_settings_load_of_an_empty_environment_gives_the_defaults() -> None:
    assert RouterSettings.load({}) == RouterSettings()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FEDERATION_SHARD_TIMEOUT": "soon"}, "FEDERATION_SHARD_TIMEOUT"),
        ({"FEDERATION_SHARD_TIMEOUT": "0"}, "FEDERATION_SHARD_TIMEOUT"),
        ({"FEDERATION_DEADLINE": "-1"}, "FEDERATION_DEADLINE"),
        ({"FEDERATION_RANK_REFRESH": "0.5"}, "FEDERATION_RANK_REFRESH"),
        ({"FEDERATION_RELOAD_CHECK": "nan"}, "FEDERATION_RELOAD_CHECK"),
        ({"FEDERATION_MAX_DURATION": "30d"}, "FEDERATION_MAX_DURATION"),
        ({"ALERTS_SMTP_PORT": "smtp"}, "ALERTS_SMTP_PORT"),
    ],
    ids=[
        "not-a-number",
        "zero-timeout",
        "negative-deadline",
        "refresh-below-1s",
        "nan",
        "duration-without-minus",
        "section-variable",
    ],
)
def test_settings_bad_value_names_variable_and_fix(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: .*fix: set e.g. {name}="):
        RouterSettings.load(env)


def test_settings_error_says_what_is_wrong_and_a_value_that_works() -> None:
    with pytest.raises(ConfigError) as info:
        RouterSettings.load({"FEDERATION_SHARD_TIMEOUT": "abc"})
    assert str(info.value) == (
        "FEDERATION_SHARD_TIMEOUT: 'abc' is not a number from 0.01 to 600; "
        "fix: set e.g. FEDERATION_SHARD_TIMEOUT=10"
    )


def test_settings_every_problem_is_in_the_one_error() -> None:
    env = {"FEDERATION_DEADLINE": "x", "ALERTS_SMTP_STARTTLS": "maybe"}
    with pytest.raises(ConfigError) as info:
        RouterSettings.load(env, {"--port": "0"})
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "--port",
        "FEDERATION_DEADLINE",
        "ALERTS_SMTP_STARTTLS",
    ]


def test_settings_flag_wins_over_its_variable() -> None:
    settings = RouterSettings.load({"FEDERATION_CONFIG": "env.yaml"}, {"--config": "flag.yaml"})
    assert settings.config_path == "flag.yaml"


def test_settings_bad_flag_is_named_with_its_fix() -> None:
    with pytest.raises(ConfigError, match=r"^--port: '0' .*; fix: pass e.g. --port 8001$"):
        RouterSettings.load({}, {"--port": "0"})


@pytest.mark.parametrize(
    ("text", "seconds"), [("-7d", 7 * 86400), ("-90m", 5400)], ids=["days", "minutes"]
)
def test_settings_max_duration_is_a_look_back(text: str, seconds: int) -> None:
    settings = RouterSettings.load({"FEDERATION_MAX_DURATION": text})
    assert settings.max_duration.seconds == seconds


def test_settings_empty_variable_counts_as_unset() -> None:
    assert RouterSettings.load({"FEDERATION_DEADLINE": "", "INFLUX_TOKEN": ""}) == RouterSettings()


def test_settings_rank_refresh_zero_means_per_request() -> None:
    assert RouterSettings.load({"FEDERATION_RANK_REFRESH": "0"}).rank_refresh_s == 0


def test_settings_built_in_code_check_their_bounds() -> None:
    with pytest.raises(pydantic.ValidationError, match="shard_timeout"):
        RouterSettings(shard_timeout=0)


def test_settings_are_frozen() -> None:
    settings = RouterSettings(max_duration=Duration(7, "d"))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
