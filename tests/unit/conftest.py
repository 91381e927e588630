"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from federation.core.shardmap import Shard, ShardMap
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard


@pytest.fixture
def recording_writer() -> tuple[ShardWriter, list[str]]:
    """A writer to one fake shard, and the lines that shard received."""
    shard_map = ShardMap((Shard("shard-a", "http://a.test"),))
    fake = FakeShard(shard_map.shards[0])
    return ShardWriter(shard_map, {"shard-a": fake}), fake.lines
