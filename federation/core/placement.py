"""Placement: rendezvous (highest-random-weight) hashing of pairs onto shard names, and
the placement key of any series (:func:`placement_key`).

Every (shard, pair) gets a score from mmh3; a pair's owners are the ``R`` shards with
the highest scores. Adding a shard moves only the pairs the new shard now wins (about
1/N of them) and never moves a pair between two old shards; removing a shard moves
only its own pairs. Hashing uses shard *names*, so changing a URL moves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import mmh3

from federation.core.lineproto import MEASUREMENT, escape_measurement, escape_tag


def score(shard: str, pair: str) -> int:
    # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
    return int(mmh3.hash64(f"{shard}\x00{pair}".encode(), signed=False)[0])


class Ring:
    def __init__(self, shard_names: list[str] | tuple[str, ...]) -> None:
        self.names = tuple(shard_names)
        # Per-instance cache: owners are looked up for every point of every tick.
        self._ranked = lru_cache(maxsize=65536)(self._rank)

    def _rank(self, pair: str) -> tuple[str, ...]:
        return tuple(sorted(self.names, key=lambda name: (-score(name, pair), name)))

    def owners(self, pair: str, replication: int = 1) -> list[str]:
        """The ``replication`` shards that own ``pair``, best first."""
        return list(self._ranked(pair)[:replication])

    def owner(self, pair: str) -> str:
        return self._ranked(pair)[0]


def placement_key(measurement: str, tags: Mapping[str, str], placement_tag: str | None) -> str:
    """The key whose owners hold a series, for ``/write`` placing its lines and ``/query``
    reading one copy of them: one definition, so reads find what writes placed.

    ``measurement`` and ``tags`` are unescaped; a tag with an empty value is absent (as
    InfluxDB stores it, and as its GROUP BY * answers show it). The key is the ``pair``
    tag of a ``price`` series (exactly as the ingester places prices), else the tag named
    by ``placement_tag`` when the series has it, else the series key (measurement and
    tags sorted by key, escaped as line protocol writes them).
    """
    pair = tags.get("pair")
    if pair and measurement == MEASUREMENT:
        return pair
    if placement_tag is not None:
        value = tags.get(placement_tag)
        if value:
            return value
    return escape_measurement(measurement) + "".join(
        f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v
    )
