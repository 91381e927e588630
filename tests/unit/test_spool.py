"""The spool on disk, and the writer's use of it, with shards faked by httpx.MockTransport."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard, ShardMap
from ingest.spool import DEAD_LETTER, STATUS, Spool
from ingest.writer import ShardWriter

SHARD_MAP = ShardMap((Shard("shard-a", "http://a.test"), Shard("shard-b", "http://b.test")))


class FakeShards:
    """Answers /write and /query per host: 204, or what ``answer`` says for that host."""

    def __init__(self) -> None:
        self.answer: dict[str, int] = {}  # host -> status to answer writes with
        self.bodies: dict[str, list[bytes]] = {"a.test": [], "b.test": []}
        self.creates: list[str] = []
        self.missing_db: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        status = self.answer.get(host, 204)
        if status == 599:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/query" and status < 500:
            self.creates.append(host)
            self.missing_db.discard(host)
            return httpx.Response(200, json={"results": [{"statement_id": 0}]})
        if host in self.missing_db:
            return httpx.Response(404, json={"error": 'database not found: "crypto"'})
        if status != 204:
            return httpx.Response(status, json={"error": f"answer {status}"})
        self.bodies[host].append(request.content)
        return httpx.Response(204)


@pytest.fixture
def shards() -> FakeShards:
    return FakeShards()


@pytest.fixture
async def clients(shards: FakeShards) -> AsyncIterator[dict[str, InfluxClient]]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(shards)) as http:
        yield {s.name: InfluxClient(s, http, "crypto", headers={}) for s in SHARD_MAP.shards}


def make_writer(clients: dict[str, InfluxClient], root: Path, **kw: object) -> ShardWriter:
    spool = Spool(root, **kw)  # type: ignore[arg-type]
    return ShardWriter(SHARD_MAP, clients, spool=spool, batch_lines=2, backoff_s=0.01)


def frame(times: list[int], pairs: list[str] | None = None) -> pd.DataFrame:
    pairs = pairs or ["btcusd"] * len(times)
    return pd.DataFrame(
        {"time": times, "exchange": "kraken", "pair": pairs, "price": 1.5, "volume": 2.0}
    )


def host_of(pair: str) -> str:
    return SHARD_MAP.owners(pair)[0][-1] + ".test"


async def test_append_survives_reopen_in_order(tmp_path: Path) -> None:
    queue = Spool(tmp_path).queue("shard-a")
    await queue.append([b"a 1\n", b"b 2\nc 3\n"])
    again = Spool(tmp_path).queue("shard-a")
    assert [await again.read(e) for e in again.entries] == [b"a 1\n", b"b 2\nc 3\n"]
    assert again.points == 3


async def test_append_after_reopen_continues_sequence(tmp_path: Path) -> None:
    await Spool(tmp_path).queue("shard-a").append([b"a 1\n"])
    queue = Spool(tmp_path).queue("shard-a")
    await queue.append([b"b 2\n"])
    assert [e.seq for e in queue.entries] == [0, 1]


async def test_open_removes_unacknowledged_tmp(tmp_path: Path) -> None:
    (tmp_path / "shard-a").mkdir()
    (tmp_path / "shard-a" / "000000000000-1-1.lp.tmp").write_bytes(b"half")
    queue = Spool(tmp_path).queue("shard-a")
    assert queue.depth == 0
    assert list((tmp_path / "shard-a").iterdir()) == []


async def test_remove_takes_head_and_file(tmp_path: Path) -> None:
    queue = Spool(tmp_path).queue("shard-a")
    await queue.append([b"a 1\n", b"b 2\n"])
    head = queue.head()
    assert head is not None
    await queue.remove(head)
    assert not head.path.exists()
    assert [await queue.read(e) for e in queue.entries] == [b"b 2\n"]
    assert (queue.points, queue.size_bytes) == (1, 4)


async def test_size_cap_drops_oldest(tmp_path: Path) -> None:
    queue = Spool(tmp_path, max_bytes=10).queue("shard-a")
    await queue.append([b"a 1\n", b"b 2\n", b"c 3\n"])
    assert [await queue.read(e) for e in queue.entries] == [b"b 2\n", b"c 3\n"]
    assert (queue.dropped_batches, queue.dropped_points) == (1, 1)


async def test_age_cap_drops_expired(tmp_path: Path) -> None:
    (tmp_path / "shard-a").mkdir()
    (tmp_path / "shard-a" / "000000000000-1000-1.lp").write_bytes(b"old 1\n")
    queue = Spool(tmp_path, max_age_s=3600).queue("shard-a")
    await queue.append([b"new 2\n"])
    assert [await queue.read(e) for e in queue.entries] == [b"new 2\n"]


async def test_dead_letter_keeps_reason_and_body(tmp_path: Path) -> None:
    queue = Spool(tmp_path).queue("shard-a")
    await queue.append([b"bad line\n"])
    entry = queue.head()
    await queue.dead_letter(b"bad line\n", "400: unable to parse\nsecond line", entry)
    lines = (tmp_path / "shard-a" / DEAD_LETTER).read_text().splitlines()
    assert lines[0].startswith("# dead-letter ")
    assert lines[0].endswith("points=1 reason: 400: unable to parse second line")
    assert lines[1:] == ["bad line"]
    assert queue.depth == 0


async def test_dead_letters_counted_again_after_reopen(tmp_path: Path) -> None:
    queue = Spool(tmp_path).queue("shard-a")
    await queue.dead_letter(b"x 1\ny 2\n", "refused")
    reopened = Spool(tmp_path).queue("shard-a")
    assert (reopened.dead_batches, reopened.dead_points) == (1, 2)


async def test_status_file_shows_depth_and_age(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.queue("shard-a").append([b"a 1\n", b"b 2\nc 3\n"])
    spool.write_status()
    status = json.loads((tmp_path / "shard-a" / STATUS).read_text())
    assert (status["batches"], status["points"], status["bytes"]) == (2, 3, 12)
    assert status["oldest_age_s"] >= 0


def test_spool_caps_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        Spool(tmp_path, max_bytes=0)


async def test_writer_shard_down_spools_instead_of_losing(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    shards.answer = {"a.test": 599, "b.test": 599}
    writer = make_writer(clients, tmp_path)
    report = await writer.write(frame([1, 2, 3]))
    await writer.close()
    assert report.failed == {}
    assert sum(report.spooled.values()) == 3
    assert sum(q.points for q in writer.spool.queues.values()) == 3  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [599, 500, 503], ids=["refused", "500", "503"])
async def test_writer_replays_spool_in_order_when_shard_is_back(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path, status: int
) -> None:
    host = host_of("btcusd")
    shards.answer[host] = status
    writer = make_writer(clients, tmp_path)
    await writer.write(frame([1, 2, 3]))
    await writer.write(frame([4, 5]))
    shards.answer.clear()
    assert await writer.wait_drained(5)
    times = [line.rsplit(b" ", 1)[1] for b in shards.bodies[host] for line in b.splitlines()]
    assert times == [b"1", b"2", b"3", b"4", b"5"]


async def test_writer_queues_new_batches_behind_spooled_ones(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    host = host_of("btcusd")
    shards.answer[host] = 503
    writer = make_writer(clients, tmp_path)
    await writer.write(frame([1]))
    shards.answer.clear()
    report = await writer.write(frame([2]))  # the shard answers, but batch 1 is still queued
    assert report.spooled
    assert not report.written.get(SHARD_MAP.owners("btcusd")[0])
    assert await writer.wait_drained(5)
    assert [b.split()[-1] for b in shards.bodies[host]] == [b"1", b"2"]


async def test_writer_refused_batch_goes_to_dead_letter(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    name = SHARD_MAP.owners("btcusd")[0]
    shards.answer[host_of("btcusd")] = 400
    writer = make_writer(clients, tmp_path)
    report = await writer.write(frame([1]))
    assert report.failed == {name: 1}
    assert not report.spooled
    assert "answer 400" in (tmp_path / name / DEAD_LETTER).read_text()
    assert writer.spool.queue(name).depth == 0  # type: ignore[union-attr]


async def test_writer_drain_dead_letters_refused_batch_and_goes_on(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    name, host = SHARD_MAP.owners("btcusd")[0], host_of("btcusd")
    shards.answer[host] = 503
    writer = make_writer(clients, tmp_path)
    await writer.write(frame([1, 2, 3]))  # two batches: [1, 2] and [3]
    shards.answer[host] = 400
    await writer.wait_drained(5)
    assert writer.spool.queue(name).dead_batches == 2  # type: ignore[union-attr]


async def test_writer_missing_database_is_created_then_written(
    clients: dict[str, InfluxClient], shards: FakeShards
) -> None:
    host = host_of("btcusd")
    shards.missing_db.add(host)
    writer = ShardWriter(SHARD_MAP, clients, retries=0)
    report = await writer.write(frame([1]))
    assert report.points == 1
    assert shards.creates == [host]


async def test_writer_drain_creates_database_before_replay(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    host = host_of("btcusd")
    shards.answer[host] = 503
    writer = make_writer(clients, tmp_path)
    await writer.write(frame([1]))
    shards.answer.clear()
    shards.missing_db.add(host)
    assert await writer.wait_drained(5)
    assert host in shards.creates
    assert len(shards.bodies[host]) == 1


async def test_writer_after_crash_replays_what_was_spooled(
    clients: dict[str, InfluxClient], shards: FakeShards, tmp_path: Path
) -> None:
    host = host_of("btcusd")
    shards.answer[host] = 599
    first = make_writer(clients, tmp_path)
    await first.write(frame([1, 2, 3]))
    await first.close()  # the process dies: nothing in memory survives
    shards.answer.clear()
    second = make_writer(clients, tmp_path)
    assert await second.wait_drained(5)
    assert b"".join(shards.bodies[host]).count(b"\n") == 3


async def test_writer_without_spool_reports_lost_points(
    clients: dict[str, InfluxClient], shards: FakeShards
) -> None:
    shards.answer = {"a.test": 503, "b.test": 503}
    writer = ShardWriter(SHARD_MAP, clients, retries=1, backoff_s=0.01)
    report = await writer.write(frame([1, 2], ["btcusd", "ethusd"]))
    assert sum(report.failed.values()) == 2
    assert not report.spooled


def test_spool_status_not_written_for_unknown_dirs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.makedirs(tmp_path / "old-shard")
    (tmp_path / "old-shard" / "000000000000-1-1.lp").write_bytes(b"x 1\n")
    spool = Spool(tmp_path)
    spool.open_all(["shard-a"])
    spool.write_status()
    assert (tmp_path / "shard-a" / STATUS).exists()
    assert sorted(p.name for p in (tmp_path / "old-shard").iterdir()) == ["000000000000-1-1.lp"]
    assert "old-shard belongs to a shard that is not in the map" in caplog.text
