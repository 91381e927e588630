"""Shared wire shapes: what InfluxDB answers and what the router returns."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Series(TypedDict):
    """One series of an InfluxDB ``/query`` result."""

    name: NotRequired[str]
    tags: NotRequired[dict[str, str]]
    columns: list[str]
    values: list[list[Any]]
    partial: NotRequired[bool]


class PricePoint(TypedDict):
    """One element of ``prices`` in ``GET /{pair}``."""

    price: float
    time: str
    exchange: str
