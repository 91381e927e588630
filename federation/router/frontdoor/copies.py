"""One copy of every series: what a SELECT is sent so that each shard's answer names its
series' placement keys, which shard's copy of each series is read, and the series
grouped back by the client's own dimensions.

The placement key is :func:`federation.core.placement.placement_key`, the one ``/write``
places lines by, so reads find each series on the owners writes put it on:

- When the WHERE pins the key's tag (``pair = 'x'`` over ``price`` only, or the
  ``placement_tag`` over other measurements only), every series selected has the tag:
  the statement is sent grouped by the client's dimensions plus that tag, and only
  the tag's owners are asked.
- Otherwise it is sent ``GROUP BY *`` (its time dimension kept): every series comes
  back with all its tags, so the key of each is known whatever placed it (a pair, the
  ``placement_tag``, or the whole series key).

Each series is then read from one shard only (the first of its key's owners that
answered with it, else the first shard that did), so replicas count once, and its tags
are cut back to the client's dimensions (InfluxDB's ``""`` for a tag a series lacks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.core.influxql_ast import (
    Dimension,
    Measurement,
    RegexLit,
    Select,
    TimeDimension,
    VarRef,
    Wildcard,
)
from federation.core.lineproto import MEASUREMENT
from federation.core.placement import placement_key
from federation.core.shardmap import ShardMap
from federation.core.types import Series
from federation.router.frontdoor.conditions import pinned

PAIR = "pair"

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Plan:
    """What one SELECT is sent as (its dimensions) and to whom (the pinned keys' owners,
    or every shard when ``keys`` is None)."""

    dimensions: tuple[Dimension, ...]
    keys: frozenset[str] | None


def plan(tree: Select, shard_map: ShardMap) -> Plan:
    """The dimensions sent and the placement keys the WHERE pins (see the module)."""
    tag = pin_tag(tree.sources, shard_map.placement_tag)
    keys = pinned(tree.condition, tag) if tag is not None else None
    if keys is not None and "" in keys:
        keys = None  # `tag = ''` selects the series without the tag, placed otherwise
    dims = tree.dimensions
    if any(isinstance(d, Wildcard) for d in dims):
        return Plan(dims, keys)
    if keys is None:
        time = tree.time_dimension
        return Plan((time, Wildcard()) if time is not None else (Wildcard(),), None)
    assert tag is not None
    if any(isinstance(d, VarRef) and d.name == tag for d in dims):
        return Plan(dims, keys)
    return Plan((*dims, VarRef(tag)), keys)


def pin_tag(sources: tuple[Measurement, ...], placement_tag: str | None) -> str | None:
    """The tag whose value is the placement key of every series of ``sources`` that has
    it: ``pair`` when they are ``price`` alone, the ``placement_tag`` when none is
    ``price`` (a price series with a pair tag is placed by the pair); None when a
    source is a regex or the sources mix the two."""
    if any(s.name is None or s.regex is not None for s in sources):
        return None
    names = {s.name for s in sources}
    if names == {MEASUREMENT}:
        return PAIR
    if MEASUREMENT not in names:
        return placement_tag
    return None


def one_copy(answers: Mapping[str, list[Series]], shard_map: ShardMap) -> list[Series]:
    """Every series (by measurement and tags) from one shard only: the first of its
    placement key's owners that answered with it, else the first shard by name."""
    holders: dict[tuple[str, Tags], dict[str, list[Series]]] = {}
    for shard, series_list in answers.items():
        for series in series_list:
            identity = (series.get("name", ""), tuple(sorted(series.get("tags", {}).items())))
            holders.setdefault(identity, {}).setdefault(shard, []).append(series)
    out: list[Series] = []
    for (name, tags), by_shard in holders.items():
        key = placement_key(name, dict(tags), shard_map.placement_tag)
        order = [s for s in shard_map.owners(key) if s in by_shard] or sorted(by_shard)
        out.extend(by_shard[order[0]])
    return out


class Regroup:
    """The client's tags of each series read (its dimensions: ``*``, names, regexes),
    from the tags the shards answered with, over the tag keys of every series read."""

    def __init__(self, tree: Select, chosen: list[Series]) -> None:
        self.keys = sorted({k for s in chosen for k in s.get("tags", {})})
        dims = [d for d in tree.dimensions if not isinstance(d, TimeDimension)]
        if any(isinstance(d, Wildcard) for d in dims):
            self.names = self.keys
        else:
            names: list[str] = []
            for d in dims:
                if isinstance(d, VarRef):
                    names.append(d.name)
                elif isinstance(d, RegexLit):
                    names.extend(k for k in self.keys if re.search(d.pattern, k))
            self.names = list(dict.fromkeys(names))

    def tags(self, series: Series) -> Tags:
        held = series.get("tags", {})
        return tuple(sorted((n, held.get(n, "")) for n in self.names))

    def hidden(self) -> list[str]:
        """The tag keys read that are not the client's dimensions (``SELECT *`` shows
        them as columns)."""
        return [k for k in self.keys if k not in self.names]


def star_columns(chosen: list[Series], hidden: list[str]) -> list[str]:
    """``SELECT *``'s columns: time, then every field and every tag not grouped by,
    sorted together, as InfluxDB orders them."""
    fields = {c for s in chosen for c in s["columns"][1:]}
    return ["time", *sorted(fields | set(hidden))]


def rows_as(series: Series, columns: list[str]) -> list[list[Any]]:
    """The series' rows in ``columns`` order: a column it lacks is its tag's value
    (null when the series has no such tag), else null."""
    have = series["columns"]
    if have == columns:
        return list(series["values"])
    tags = series.get("tags", {})
    where = {c: i for i, c in enumerate(have)}
    picks: list[tuple[int | None, Any]] = [
        (where.get(c), (tags.get(c) or None) if c not in where else None) for c in columns
    ]
    return [[row[i] if i is not None else const for i, const in picks] for row in series["values"]]
