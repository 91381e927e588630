"""Wire shapes of InfluxDB's answers."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Series(TypedDict):
    """One series of an InfluxDB ``/query`` result."""

    name: NotRequired[str]
    tags: NotRequired[dict[str, str]]
    columns: list[str]
    values: list[list[Any]]
    partial: NotRequired[bool]
