"""Validation of the router's query inputs: every failure is a 400 naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from federation.exceptions import BadParameter
from federation.influxql import Duration

ID_MAX = 64
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_id(name: str, value: str) -> str:
    """A pair or exchange id such as ``btcusd`` or ``binance-us`` (case-insensitive)."""
    if len(value) > ID_MAX:
        raise BadParameter(f"{name} is longer than {ID_MAX} characters", parameter=name)
    lowered = value.lower()
    if not _ID_RE.match(lowered):
        raise BadParameter(
            f"{name} {value!r} is malformed: use letters, digits, '-' or '_', "
            "starting with a letter or digit",
            parameter=name,
        )
    return lowered


def parse_duration(value: str, max_seconds: int) -> Duration:
    try:
        duration = Duration.parse(value)
    except ValueError as exc:
        raise BadParameter(f"duration {exc}", parameter="duration") from None
    if duration.seconds > max_seconds:
        raise BadParameter(
            f"duration {value} is longer than the {max_seconds // 86400}d this service keeps",
            parameter="duration",
        )
    return duration


def parse_bool(name: str, value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise BadParameter(f"{name} must be true or false, not {value!r}", parameter=name) from None


def reject_unknown(params: Iterable[str], allowed: Iterable[str]) -> None:
    known = set(allowed)
    for name in params:
        if name not in known:
            raise BadParameter(
                f"unknown parameter {name!r}; this endpoint takes {', '.join(sorted(known))}",
                parameter=name,
            )


@dataclass(frozen=True)
class PairQuery:
    pair: str
    exchange: str | None
    duration: Duration
    strict: bool

    @classmethod
    def parse(cls, pair: str, params: Mapping[str, str], max_seconds: int) -> PairQuery:
        reject_unknown(params, ("exchange", "duration", "strict"))
        exchange = params.get("exchange") or None
        return cls(
            pair=parse_id("pair", pair),
            exchange=None if exchange is None else parse_id("exchange", exchange),
            duration=parse_duration(params.get("duration", "-24h"), max_seconds),
            strict=parse_bool("strict", params.get("strict", "false")),
        )
