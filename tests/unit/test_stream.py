"""The streamed merge over fake shards that answer in chunks, fail mid-way or stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard
from federation.router.stream import MergedPrices

Rows = list[tuple[int, float, str]]


def chunk(rows: Rows) -> bytes:
    series = [
        {
            "name": "price",
            "columns": ["time", "price", "exchange"],
            "values": [list(r) for r in rows],
            "partial": True,
        }
    ]
    return orjson.dumps({"results": [{"statement_id": 0, "series": series}]}) + b"\n"


def shard(
    chunks: list[Rows], fail_after: int | None = None, stall: bool = False
) -> httpx.MockTransport:
    async def body() -> AsyncIterator[bytes]:
        for i, rows in enumerate(chunks):
            if i == fail_after:
                raise httpx.ReadError("connection reset")
            if stall and i == 1:
                await asyncio.sleep(5)
            yield chunk(rows)

    return httpx.MockTransport(lambda request: httpx.Response(200, content=body()))


async def merge(transports: dict[str, httpx.MockTransport]) -> tuple[Rows, dict[str, str]]:
    clients = {
        name: InfluxClient(
            Shard(name, f"http://{name}"), httpx.AsyncClient(transport=t), "db", headers={}
        )
        for name, t in transports.items()
    }
    merged = MergedPrices(clients, "SELECT 1", shard_timeout=0.3, deadline_s=2)
    rows = [(t, p, e) for batch in [b async for b in merged.batches()] for t, p, e in batch]
    return rows, merged.missing


A = [[(1, 1.0, "a"), (3, 3.0, "a")], [(5, 5.0, "a")]]
B = [[(1, 1.0, "b"), (2, 2.0, "b")], [(3, 3.0, "b"), (6, 6.0, "b")]]


async def test_merge_interleaves_chunks_in_time_order() -> None:
    rows, missing = await merge({"s1": shard(A), "s2": shard(B)})
    assert [(t, e) for t, _, e in rows] == [
        (1, "a"),
        (1, "b"),
        (2, "b"),
        (3, "a"),
        (3, "b"),
        (5, "a"),
        (6, "b"),
    ]
    assert missing == {}


async def test_merge_keeps_one_point_per_time_and_exchange() -> None:
    rows, _ = await merge({"s1": shard(A), "s2": shard(A), "s3": shard(A)})
    assert rows == [(1, 1.0, "a"), (3, 3.0, "a"), (5, 5.0, "a")]


@pytest.mark.parametrize(
    ("broken", "reason"),
    [(shard(B, fail_after=1), "connection reset"), (shard(B, stall=True), "no answer within")],
    ids=["fails-mid-way", "stalls"],
)
async def test_merge_names_shard_lost_mid_way_and_keeps_what_it_sent(
    broken: httpx.MockTransport, reason: str
) -> None:
    rows, missing = await merge({"s1": shard(A), "s2": broken})
    assert [(t, e) for t, _, e in rows] == [(1, "a"), (1, "b"), (2, "b"), (3, "a"), (5, "a")]
    assert reason in missing["s2"]


async def test_merge_of_failed_shard_at_start_is_missing() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    rows, missing = await merge({"s1": shard(A), "s2": httpx.MockTransport(refuse)})
    assert len(rows) == 3
    assert list(missing) == ["s2"]
