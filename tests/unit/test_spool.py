"""The spool on disk, and the writer's use of it, with fake shards."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ingest.spool import DEAD_LETTER, STATUS, Spool
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard
from tests.spooling import SHARD_MAP, frame, make_writer, owner_of


@pytest.fixture
def shards() -> dict[str, FakeShard]:
    return {s.name: FakeShard(s) for s in SHARD_MAP.shards}


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
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    for fake in shards.values():
        fake.down = True
    writer = make_writer(shards, tmp_path)
    report = await writer.write(frame([1, 2, 3]))
    await writer.close()
    assert report.failed == {}
    assert sum(report.spooled.values()) == 3
    assert sum(q.points for q in writer.spool.queues.values()) == 3  # type: ignore[union-attr]


async def test_writer_replays_spool_in_order_when_shard_is_back(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1, 2, 3]))
    await writer.write(frame([4, 5]))
    owner.down = False
    assert await writer.wait_drained(5)
    assert [line.rsplit(" ", 1)[1] for line in owner.lines] == ["1", "2", "3", "4", "5"]


async def test_writer_queues_new_batches_behind_spooled_ones(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1]))
    owner.down = False
    report = await writer.write(frame([2]))  # the shard answers, but batch 1 is still queued
    assert report.spooled
    assert not report.written.get(owner.name)
    assert await writer.wait_drained(5)
    assert [b.split()[-1] for b in owner.bodies] == [b"1", b"2"]


async def test_writer_refused_batch_goes_to_dead_letter(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.reject_writes = True
    writer = make_writer(shards, tmp_path)
    report = await writer.write(frame([1]))
    assert report.failed == {owner.name: 1}
    assert not report.spooled
    assert "answered 400" in (tmp_path / owner.name / DEAD_LETTER).read_text()
    assert writer.spool.queue(owner.name).depth == 0  # type: ignore[union-attr]


async def test_writer_drain_dead_letters_refused_batch_and_goes_on(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1, 2, 3]))  # two batches: [1, 2] and [3]
    owner.down, owner.reject_writes = False, True
    await writer.wait_drained(5)
    assert writer.spool.queue(owner.name).dead_batches == 2  # type: ignore[union-attr]


async def test_writer_missing_database_is_created_then_written(
    shards: dict[str, FakeShard],
) -> None:
    owner = owner_of("btcusd", shards)
    owner.has_database = False
    writer = ShardWriter(SHARD_MAP, shards, retries=0)
    report = await writer.write(frame([1]))
    assert report.points == 1
    assert {name: fake.created for name, fake in shards.items()} == {
        name: int(name == owner.name) for name in shards
    }


async def test_writer_drain_creates_database_before_replay(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1]))
    owner.down, owner.has_database = False, False
    assert await writer.wait_drained(5)
    assert owner.created == 1
    assert len(owner.bodies) == 1


async def test_writer_after_crash_replays_what_was_spooled(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    first = make_writer(shards, tmp_path)
    await first.write(frame([1, 2, 3]))
    await first.close()  # the process dies: nothing in memory survives
    owner.down = False
    second = make_writer(shards, tmp_path)
    assert await second.wait_drained(5)
    assert len(owner.lines) == 3


async def test_writer_without_spool_reports_lost_points(shards: dict[str, FakeShard]) -> None:
    for fake in shards.values():
        fake.down = True
    writer = ShardWriter(SHARD_MAP, shards, retries=1, backoff_s=0.01)
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


async def test_spool_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    queue = spool.queue("shard-a")
    await queue.append([b"a 1\n"])
    await queue.dead_letter(b"bad\n", "400", queue.head())
    queue.write_status(every_s=0)
    dirs = [spool.root, spool.root / "shard-a"]
    files = [p for p in spool.root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {DEAD_LETTER, STATUS}
    assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


async def test_existing_open_spool_directory_is_narrowed(tmp_path: Path) -> None:
    (tmp_path / "shard-a").mkdir(mode=0o755)
    Spool(tmp_path).queue("shard-a")
    assert stat.S_IMODE((tmp_path / "shard-a").stat().st_mode) == 0o700
