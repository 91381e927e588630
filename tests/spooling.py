"""What the spool's tests share: a two-shard map, a writer with a spool on it, frames of
one exchange, and the shard that owns a pair."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from federation.core.shardmap import Shard, ShardMap
from ingest.spool import Spool
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard

SHARD_MAP = ShardMap((Shard("shard-a", "http://a.test"), Shard("shard-b", "http://b.test")))


def make_writer(shards: dict[str, FakeShard], root: Path) -> ShardWriter:
    """A writer by :data:`SHARD_MAP` spooling under ``root``, two lines a batch."""
    return ShardWriter(SHARD_MAP, shards, spool=Spool(root), batch_lines=2, backoff_s=0.01)


def frame(times: list[int], pairs: str | list[str] = "btcusd") -> pd.DataFrame:
    """kraken's rows at ``times``, of one pair or one pair per row."""
    return pd.DataFrame(
        {"time": times, "exchange": "kraken", "pair": pairs, "price": 1.5, "volume": 2.0}
    )


def owner_of(pair: str, shards: dict[str, FakeShard], shard_map: ShardMap = SHARD_MAP) -> FakeShard:
    return shards[shard_map.owners(pair)[0]]
