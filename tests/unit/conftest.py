"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard, ShardMap
from ingest.writer import ShardWriter


@pytest.fixture
async def recording_writer() -> AsyncIterator[tuple[ShardWriter, list[str]]]:
    """A writer to one fake shard, and the lines that shard received."""
    received: list[str] = []

    def shard(request: httpx.Request) -> httpx.Response:
        received.extend(request.content.decode().splitlines())
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(shard)) as http:
        shard_map = ShardMap((Shard("shard-a", "http://a.test"),))
        client = InfluxClient(shard_map.shards[0], http, "crypto", headers={})
        yield ShardWriter(shard_map, {"shard-a": client}), received
