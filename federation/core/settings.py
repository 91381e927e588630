"""Settings from the environment: a bad value fails at start naming the variable and the fix."""

from __future__ import annotations

from collections.abc import Mapping

from federation.core.errors import ConfigError


def env_number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """The number in environment variable ``name``, or ``default``; a ConfigError naming the
    variable and the fix when it is not a number from ``low`` to ``high``."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(
            f"{name}: {text!r} is not a number from {low:g} to {high:g}; "
            f"fix: set e.g. {name}={default:g}"
        )
    return value
