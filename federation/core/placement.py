"""Placement: rendezvous (highest-random-weight) hashing of pairs onto shard names.

Every (shard, pair) gets a score from mmh3; a pair's owners are the ``R`` shards with
the highest scores. Adding a shard moves only the pairs the new shard now wins (about
1/N of them) and never moves a pair between two old shards; removing a shard moves
only its own pairs. Hashing uses shard *names*, so changing a URL moves nothing.
"""

from __future__ import annotations

from functools import lru_cache

import mmh3


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
