"""The spool's faults, each ending with every point the source produced stored exactly
once on its owners: torn files of each kind, a disk that fills (a patched fsync), write
answers that can pass (401, 403, 429, 503) and a map that changed under spooled batches."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from federation.core.clock import now_ms
from federation.core.rollup import tick_line
from federation.core.shardmap import Shard, ShardMap
from ingest.spool import DEAD_LETTER, STATUS, Spool
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard
from tests.spooling import SHARD_MAP, frame, make_writer, owner_of

WIDER_MAP = ShardMap((*SHARD_MAP.shards, Shard("shard-c", "http://c.test")))
PAIRS = [f"p{i}usd" for i in range(40)]


@pytest.fixture
def shards() -> dict[str, FakeShard]:
    return {s.name: FakeShard(s) for s in WIDER_MAP.shards}


def held(shard: FakeShard) -> list[tuple[int, str]]:
    return sorted(zip(shard.points["time"].tolist(), shard.points["pair"].tolist(), strict=True))


def status(root: Path, shard: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / shard / STATUS).read_text())
    return loaded


class DiskFull:
    """``os.fsync`` of the spool's files that fails with ENOSPC once ``allowed`` calls were made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, allowed: int = 0) -> None:
        self.allowed = allowed
        real = os.fsync

        def fsync(fd: int) -> None:
            if self.allowed <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.allowed -= 1
            real(fd)

        monkeypatch.setattr("ingest.spoolfiles.os.fsync", fsync)

    def free(self) -> None:
        self.allowed = 1 << 30


def spooled_batch(root: Path, shard: str, seq: int, body: bytes, points: int) -> Path:
    (root / shard).mkdir(parents=True, exist_ok=True)
    path = root / shard / f"{seq:012d}-{NOW_MS}-{points}.lp"
    path.write_bytes(body)
    return path


NOW_MS = now_ms()
LINES = [f"price,exchange=kraken,pair=btcusd price=1.5 {t}\n".encode() for t in (1, 2, 3)]


@pytest.mark.parametrize(
    "tail",
    [b"# dead-letter 2026-11-28T10:00:00Z seq=3 poi", b"# dead-letter 2026-11-28T10:00:00Z"],
    ids=["torn-in-points", "torn-after-stamp"],
)
async def test_torn_dead_letter_header_cut_and_queue_replayed(
    shards: dict[str, FakeShard], tmp_path: Path, tail: bytes
) -> None:
    owner = owner_of("btcusd", shards)
    spooled_batch(tmp_path, owner.name, 0, b"".join(LINES), 3)
    (tmp_path / owner.name / DEAD_LETTER).write_bytes(tail)
    writer = make_writer(shards, tmp_path)
    assert await writer.wait_drained(5)
    assert held(owner) == [(1, "btcusd"), (2, "btcusd"), (3, "btcusd")]
    assert (tmp_path / owner.name / DEAD_LETTER).read_bytes() == b""


async def test_unreadable_dead_letter_header_counted_without_points(tmp_path: Path) -> None:
    (tmp_path / "shard-a").mkdir()
    good = b"# dead-letter 2026-11-28T10:00:00Z seq=- points=2 reason: x\nl 1\nl 2\n"
    (tmp_path / "shard-a" / DEAD_LETTER).write_bytes(b"# dead-letter ???\nl 0\n" + good)
    queue = Spool(tmp_path).queue("shard-a")
    assert (queue.dead_batches, queue.dead_points) == (2, 2)


async def test_dead_letter_append_after_torn_tail_starts_on_a_new_line(tmp_path: Path) -> None:
    (tmp_path / "shard-a").mkdir()
    (tmp_path / "shard-a" / DEAD_LETTER).write_bytes(b"# dead-letter 2026-11-28T10:00:00Z se")
    queue = Spool(tmp_path).queue("shard-a")
    await queue.dead_letter(b"x 1\n", "refused")
    assert (Spool(tmp_path).queue("shard-a").dead_batches, queue.torn_files) == (1, 1)


async def test_torn_batch_cut_to_whole_lines_and_replayed(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    spooled_batch(tmp_path, owner.name, 0, b"".join(LINES)[:-9], 3)  # the third line torn
    spooled_batch(tmp_path, owner.name, 1, b"price,exchange=kraken,pair=btcusd price=1.5 4\n", 1)
    writer = make_writer(shards, tmp_path)
    assert await writer.wait_drained(5)
    await writer.close()
    assert held(owner) == [(1, "btcusd"), (2, "btcusd"), (4, "btcusd")]
    assert {k: status(tmp_path, owner.name)[k] for k in ("torn_files", "lost_points")} == {
        "torn_files": 1,
        "lost_points": 1,
    }


async def test_torn_batch_renamed_to_its_point_count(tmp_path: Path) -> None:
    spooled_batch(tmp_path, "shard-a", 7, b"".join(LINES)[:-3], 3)
    queue = Spool(tmp_path).queue("shard-a")
    assert [(e.path.name, e.points) for e in queue.entries] == [(f"000000000007-{NOW_MS}-2.lp", 2)]
    assert [p.name for p in (tmp_path / "shard-a").iterdir()] == [f"000000000007-{NOW_MS}-2.lp"]


async def test_empty_batch_file_removed_and_counted_lost(tmp_path: Path) -> None:
    spooled_batch(tmp_path, "shard-a", 0, b"", 5)
    queue = Spool(tmp_path).queue("shard-a")
    assert (queue.depth, queue.lost_batches, queue.lost_points) == (0, 1, 5)
    assert list((tmp_path / "shard-a").iterdir()) == []


async def test_failed_append_keeps_written_batches_queued_and_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = Spool(tmp_path).queue("shard-a")
    DiskFull(monkeypatch, allowed=2)  # the first batch's file and directory, then full
    done, error = await queue.append([b"a 1\n", b"b 2\n", b"c 3\n"])
    assert (done, isinstance(error, OSError)) == (1, True)
    assert [await queue.read(e) for e in queue.entries] == [b"a 1\n"]
    assert sorted(p.name for p in (tmp_path / "shard-a").iterdir()) == [queue.entries[0].path.name]


async def test_disk_full_while_spooling_counts_lost_points(
    shards: dict[str, FakeShard], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    disk = DiskFull(monkeypatch, allowed=2)
    report = await writer.write(frame([1, 2, 3, 4]))  # batches [1, 2] and [3, 4]
    disk.free()
    owner.down = False
    assert await writer.wait_drained(5)
    await writer.close()
    assert (report.spooled, report.failed) == ({owner.name: 2}, {owner.name: 2})
    assert held(owner) == [(1, "btcusd"), (2, "btcusd")]
    assert status(tmp_path, owner.name)["lost_points"] == 2


async def test_disk_full_while_dead_lettering_keeps_batch_until_written(
    shards: dict[str, FakeShard], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = owner_of("btcusd", shards)
    spooled_batch(tmp_path, owner.name, 0, b"not line protocol\n", 1)
    spooled_batch(tmp_path, owner.name, 1, LINES[2], 1)
    disk = DiskFull(monkeypatch)
    writer = make_writer(shards, tmp_path)
    assert not await writer.wait_drained(0.2)
    assert writer.spool.queue(owner.name).depth == 2  # type: ignore[union-attr]
    disk.free()
    assert await writer.wait_drained(5)
    assert held(owner) == [(3, "btcusd")]
    dead = (tmp_path / owner.name / DEAD_LETTER).read_text().splitlines()
    assert (len(dead), dead[1]) == (2, "not line protocol")


@pytest.mark.parametrize("answer", [401, 403, 429, 503], ids=["401", "403", "429", "503"])
async def test_passing_refusal_retried_never_dead_lettered(
    shards: dict[str, FakeShard], tmp_path: Path, answer: int
) -> None:
    owner = owner_of("btcusd", shards)
    owner.write_answers = [answer] * 4
    writer = make_writer(shards, tmp_path)
    report = await writer.write(frame([1, 2, 3]))
    assert await writer.wait_drained(5)
    assert (report.spooled, report.failed) == ({owner.name: 3}, {})
    assert held(owner) == [(1, "btcusd"), (2, "btcusd"), (3, "btcusd")]
    assert not (tmp_path / owner.name / DEAD_LETTER).exists()


@pytest.mark.parametrize("answer", [401, 429, 503], ids=["401", "429", "503"])
async def test_passing_refusal_retried_without_spool(
    shards: dict[str, FakeShard], answer: int
) -> None:
    owner = owner_of("btcusd", shards)
    owner.write_answers = [answer, answer]
    writer = ShardWriter(SHARD_MAP, shards, retries=3, backoff_s=0.01)
    report = await writer.write(frame([1, 2]))
    assert (report.written, report.failed) == ({owner.name: 2}, {})


async def test_vanished_batch_counted_lost_and_queue_goes_on(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    owner = owner_of("btcusd", shards)
    owner.down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1, 2, 3]))
    await writer.close()  # no drainer holds the head's body in memory
    queue = writer.spool.queue(owner.name)  # type: ignore[union-attr]
    queue.entries[0].path.unlink()
    owner.down = False
    assert await writer.wait_drained(5)
    assert held(owner) == [(3, "btcusd")]
    assert (queue.lost_batches, queue.lost_points) == (1, 2)


def moved_pair() -> str:
    """A pair shard-a owns in SHARD_MAP and shard-c owns in WIDER_MAP."""
    return next(
        p
        for p in PAIRS
        if SHARD_MAP.owners(p) == ["shard-a"] and WIDER_MAP.owners(p) == ["shard-c"]
    )


def kept_pair() -> str:
    return next(p for p in PAIRS if SHARD_MAP.owners(p) == WIDER_MAP.owners(p) == ["shard-a"])


async def test_spooled_lines_of_moved_pair_go_to_new_owner(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    moved, kept = moved_pair(), kept_pair()
    shards["shard-a"].down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(pd.concat([frame([1, 2], moved), frame([1, 2], kept)]))
    writer.set_map(WIDER_MAP, shards)
    await writer.write(pd.concat([frame([3], moved), frame([3], kept)]))
    shards["shard-a"].down = False
    assert await writer.wait_drained(5)
    assert held(shards["shard-a"]) == [(1, kept), (2, kept), (3, kept)]
    assert held(shards["shard-c"]) == [(1, moved), (2, moved), (3, moved)]
    assert held(shards["shard-b"]) == []


async def test_spool_of_moved_pair_rerouted_while_old_owner_down(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    moved = moved_pair()
    shards["shard-a"].down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1, 2, 3], moved))
    writer.set_map(WIDER_MAP, shards)
    assert await writer.wait_drained(5)  # shard-a never answers: it owns none of them now
    assert held(shards["shard-c"]) == [(1, moved), (2, moved), (3, moved)]
    assert writer.spool.queue("shard-a").rerouted_points == 3  # type: ignore[union-attr]


async def test_line_without_pair_tag_stays_and_its_batch_still_moves_after_map_change(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    spooled_batch(tmp_path, "shard-a", 0, b"garbage\n" + LINES[0], 2)
    spooled_batch(tmp_path, "shard-a", 1, LINES[1], 1)
    writer = make_writer(shards, tmp_path)
    writer.set_map(WIDER_MAP, shards)
    assert await writer.wait_drained(5)
    owner = owner_of("btcusd", shards, WIDER_MAP)
    assert held(owner) == [(1, "btcusd"), (2, "btcusd")]
    assert writer.spool.queue("shard-a").dead_points == 1  # type: ignore[union-attr]


async def test_spooled_rollup_rows_stay_while_the_prices_beside_them_move(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    moved = moved_pair()
    shards["shard-a"].down = True
    writer = make_writer(shards, tmp_path)
    await writer.write(frame([1, 2], moved), {"shard-a": [tick_line(2, 2, 0)]})
    writer.set_map(WIDER_MAP, shards)
    shards["shard-a"].down = False
    assert await writer.wait_drained(5)
    assert held(shards["shard-c"]) == [(1, moved), (2, moved)]
    assert list(shards["shard-a"].rollup_rows.values()) == [{"points": 2, "late": 0}]


async def test_spool_of_earlier_run_dealt_by_the_map_of_this_one(
    shards: dict[str, FakeShard], tmp_path: Path
) -> None:
    moved, kept = moved_pair(), kept_pair()
    shards["shard-a"].down = True
    first = make_writer(shards, tmp_path)
    await first.write(pd.concat([frame([1, 2], moved), frame([1, 2], kept)]))
    await first.close()
    shards["shard-a"].down = False
    second = ShardWriter(WIDER_MAP, shards, spool=Spool(tmp_path), backoff_s=0.01)
    assert await second.wait_drained(5)
    assert held(shards["shard-a"]) == [(1, kept), (2, kept)]
    assert held(shards["shard-c"]) == [(1, moved), (2, moved)]
