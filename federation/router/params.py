"""Validation of the router's query inputs: every failure is a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from federation.core.durations import Duration
from federation.core.errors import BadParameter
from federation.core.inputs import parse_bool, parse_id, query_params


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


@dataclass(frozen=True)
class PairQuery:
    pair: str
    exchange: str | None
    duration: Duration
    strict: bool

    @classmethod
    def parse(cls, pair: str, items: Iterable[tuple[str, str]], max_seconds: int) -> PairQuery:
        """From the path's pair and the query's ``(name, value)`` pairs."""
        params = query_params(items, ("exchange", "duration", "strict"))
        exchange = params.get("exchange")
        return cls(
            pair=parse_id("pair", pair),
            exchange=None if exchange is None else parse_id("exchange", exchange),
            duration=parse_duration(params.get("duration", "-24h"), max_seconds),
            strict=parse_bool("strict", params.get("strict", "false")),
        )
