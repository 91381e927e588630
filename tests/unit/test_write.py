"""``/write`` over fake shards: placement, precision, bad lines, bodies, the spool. The
error texts are compared with real influxd's in tests/integration/test_influx_write_live.py."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from ingest.spool import Spool
from tests.asgi import served
from tests.fakeshard import FakeShard, connect_to
from tests.unit.test_router import SHARDS

PAIRS = ["btcusd", "ethusd", "solusd", "adausd", "xrpusd", "dotusd"]


def price(pair: str, t: int = 1, exchange: str = "kraken") -> str:
    return f"price,exchange={exchange},pair={pair} price=1.5 {t}"


@asynccontextmanager
async def router(
    tmp_path: Path, fakes: dict[str, FakeShard], *, replication: int = 1, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    shard_map = ShardMap(
        SHARDS, replication=replication, placement_tag=settings.pop("placement_tag", None)
    )
    router_settings = RouterSettings(
        shard_timeout=0.3, rank_refresh_s=0, write_spool_dir=str(tmp_path / "spool"), **settings
    )
    async with served(create_app(shard_map, router_settings, connect_to(fakes))) as client:
        yield client


def holders(fakes: dict[str, FakeShard], line_part: str) -> list[str]:
    return sorted(name for name, f in fakes.items() if any(line_part in x for x in f.lines))


@pytest.mark.parametrize("replication", [1, 2], ids=["r1", "r2"])
async def test_write_price_lines_land_on_their_pairs_owners(
    tmp_path: Path, replication: int
) -> None:
    fakes: dict[str, FakeShard] = {}
    async with router(tmp_path, fakes, replication=replication) as client:
        body = "\n".join(price(p) for p in PAIRS)
        answer = await client.post("/write", params={"db": "crypto"}, content=body)
    assert answer.status_code == 204
    shard_map = ShardMap(SHARDS, replication=replication)
    for pair in PAIRS:
        assert holders(fakes, f"pair={pair} ") == sorted(shard_map.owners(pair))


@pytest.mark.parametrize(
    ("precision", "ns"),
    [
        ("", 5),
        ("n", 5),
        ("u", 5_000),
        ("ms", 5_000_000),
        ("s", 5_000_000_000),
        ("m", 300_000_000_000),
        ("h", 18_000_000_000_000),
    ],
    ids=["default", "n", "u", "ms", "s", "m", "h"],
)
async def test_write_precision_scales_the_time(tmp_path: Path, precision: str, ns: int) -> None:
    fakes: dict[str, FakeShard] = {}
    async with router(tmp_path, fakes) as client:
        params = {"db": "crypto", "precision": precision}
        await client.post("/write", params=params, content=price("btcusd", 5))
    (line,) = [x for f in fakes.values() for x in f.lines]
    assert line.endswith(f" {ns}")


async def test_write_line_without_time_gets_the_time_of_receipt(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    before = time.time_ns()
    async with router(tmp_path, fakes) as client:
        await client.post("/write", params={"db": "crypto"}, content="cpu v=1")
    (line,) = [x for f in fakes.values() for x in f.lines]
    assert before <= int(line.rsplit(" ", 1)[1]) <= time.time_ns()


async def test_write_bad_lines_partial_write_and_good_lines_written(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    body = f"{price('btcusd')}\nbad\n{price('ethusd')}\ncpu v=tru\n"
    async with router(tmp_path, fakes) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "partial write: unable to parse 'bad': missing fields\n"
            "unable to parse 'cpu v=tru': invalid boolean dropped=2"
        },
    )
    assert len([x for f in fakes.values() for x in f.lines]) == 2


async def test_write_only_bad_lines_is_not_a_partial_write(tmp_path: Path) -> None:
    async with router(tmp_path, {}) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content="bad")
    assert answer.json() == {"error": "unable to parse 'bad': missing fields"}


async def test_write_shard_refusal_passed_on_as_partial_write(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    async with router(tmp_path, fakes) as client:
        owner = ShardMap(SHARDS).owners("btcusd")[0]
        connect_to(fakes)(ShardMap(SHARDS).by_name(owner), "crypto").write_answers = [400]
        answer = await client.post("/write", params={"db": "crypto"}, content=price("btcusd"))
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "partial write: refused dropped=1"},
    )


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({}, 400, "database is required"),
        ({"db": "other"}, 404, 'database not found: "other"'),
        ({"db": "crypto", "rp": "weekly"}, 400, "retention policy not found: weekly"),
        (
            {"db": "crypto", "precision": "us"},
            400,
            "precision 'us' is not one of n, u, ms, s, m, h",
        ),
    ],
    ids=["no-db", "other-db", "other-rp", "bad-precision"],
)
async def test_write_parameter_refused_as_influxdb_words_it(
    tmp_path: Path, params: dict[str, str], status: int, error: str
) -> None:
    async with router(tmp_path, {}) as client:
        answer = await client.post("/write", params=params, content=price("btcusd"))
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert answer.headers["X-Influxdb-Version"]


async def test_write_gzip_body_written(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    body = gzip.compress("\n".join(price(p) for p in PAIRS).encode())
    async with router(tmp_path, fakes) as client:
        headers = {"Content-Encoding": "gzip"}
        answer = await client.post("/write", params={"db": "crypto"}, content=body, headers=headers)
    assert (answer.status_code, sum(len(f.lines) for f in fakes.values())) == (204, len(PAIRS))


@pytest.mark.parametrize(
    ("body", "status"),
    [(gzip.compress(b"cpu v=1 1\n" * 200_000), 413), (b"not gzip", 400), (b"\x1f\x8b\x08", 400)],
    ids=["bomb", "not-gzip", "cut"],
)
async def test_write_gzip_body_bounded_and_checked(
    tmp_path: Path, body: bytes, status: int
) -> None:
    async with router(tmp_path, {}, write_max_body=100_000) as client:
        headers = {"Content-Encoding": "gzip"}
        answer = await client.post("/write", params={"db": "crypto"}, content=body, headers=headers)
    assert answer.status_code == status
    assert status != 413 or answer.json()["limit"] == "FEDERATION_WRITE_MAX_BODY"


async def test_write_body_over_its_own_limit_413(tmp_path: Path) -> None:
    body = "\n".join(price("btcusd", t) for t in range(5000))  # ~250 kB
    async with router(tmp_path, {}, write_max_body=100_000) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=body)
    assert (answer.status_code, answer.json()["limit"]) == (413, "FEDERATION_WRITE_MAX_BODY")


async def test_write_body_past_the_json_api_limit_accepted(tmp_path: Path) -> None:
    body = "\n".join(price("btcusd", t) for t in range(2000))  # ~100 kB, over 16 KiB
    async with router(tmp_path, {}) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=body)
    assert answer.status_code == 204


async def test_write_owner_down_spooled_then_replayed(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    owner = ShardMap(SHARDS).owners("btcusd")[0]
    connect_to(fakes)(ShardMap(SHARDS).by_name(owner), "crypto").down = True
    async with router(tmp_path, fakes) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=price("btcusd"))
        assert (answer.status_code, fakes[owner].lines) == (204, [])
        assert list((tmp_path / "spool" / owner).glob("*.lp"))
        fakes[owner].down = False
        writes = client._transport.app.state.writes  # type: ignore[attr-defined]
        assert await writes.writer.wait_drained(5)
    assert fakes[owner].lines == [price("btcusd")]


async def test_write_neither_stored_nor_spooled_is_503(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    for shard in SHARDS:
        connect_to(fakes)(shard, "crypto").down = True
    (tmp_path / "spool").write_text("a file where the spool's directory should be")
    async with router(tmp_path, fakes) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=price("btcusd"))
    assert answer.status_code == 503
    assert "send them again" in answer.json()["error"]


@pytest.mark.parametrize(
    ("line", "placement_tag", "key"),
    [
        ("cpu,host=h1,region=eu v=1 1", "host", "h1"),
        ("cpu,region=eu,host=h1 v=1 1", None, "cpu,host=h1,region=eu"),
        ("cpu,region=eu v=1 1", "host", "cpu,region=eu"),
        ("price,exchange=x,pair=ethusd price=1 1", "exchange", "ethusd"),
    ],
    ids=["tag", "series-key-sorted", "tag-missing", "price-by-pair"],
)
async def test_write_other_measurements_placed_by_tag_else_series_key(
    tmp_path: Path, line: str, placement_tag: str | None, key: str
) -> None:
    fakes: dict[str, FakeShard] = {}
    async with router(tmp_path, fakes, placement_tag=placement_tag) as client:
        await client.post("/write", params={"db": "crypto"}, content=line)
    assert holders(fakes, line) == ShardMap(SHARDS).owners(key)


async def test_write_get_is_405_not_a_pair(tmp_path: Path) -> None:
    async with router(tmp_path, {}) as client:
        answer = await client.get("/write", params={"db": "crypto"})
    assert (answer.status_code, answer.headers["Allow"]) == (405, "POST")


async def test_write_chunked_body_over_its_limit_413(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for t in range(5000):
            yield (price("btcusd", t) + "\n").encode()

    async with router(tmp_path, {}, write_max_body=100_000) as client:
        answer = await client.post("/write", params={"db": "crypto"}, content=chunks())
    assert (answer.status_code, answer.json()["limit"]) == (413, "FEDERATION_WRITE_MAX_BODY")


async def test_write_spool_of_an_earlier_run_replayed_at_start(tmp_path: Path) -> None:
    line = price("ethusd", 7_000_000_000)
    await Spool(tmp_path / "spool").queue("shard-a").append([f"{line}\n".encode()])
    fakes: dict[str, FakeShard] = {}
    async with router(tmp_path, fakes) as client:
        writes = client._transport.app.state.writes  # type: ignore[attr-defined]
        for _ in range(100):
            if writes.opened and await writes.writer.wait_drained(0.1):
                break
            await asyncio.sleep(0.01)
    assert holders(fakes, line) == ShardMap(SHARDS).owners("ethusd")


async def test_write_concurrent_batches_for_a_down_shard_all_spooled(tmp_path: Path) -> None:
    fakes: dict[str, FakeShard] = {}
    owner = ShardMap(SHARDS).owners("btcusd")[0]
    connect_to(fakes)(ShardMap(SHARDS).by_name(owner), "crypto").down = True
    async with router(tmp_path, fakes) as client:
        await asyncio.gather(
            *(
                client.post("/write", params={"db": "crypto"}, content=price("btcusd", t))
                for t in range(20)
            )
        )
        fakes[owner].down = False
        writes = client._transport.app.state.writes  # type: ignore[attr-defined]
        assert await writes.writer.wait_drained(5)
    assert sorted(fakes[owner].lines) == sorted(price("btcusd", t) for t in range(20))
