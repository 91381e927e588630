from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import ShardMap, load_shard_map
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.clock import T0_MS, FakeClock
from tests.fakeshard import connect_to

TWO = (
    "shards:\n  - {name: shard-a, url: 'http://shard-a:8086'}\n"
    "  - {name: shard-b, url: 'http://shard-b:8086'}\n"
)
THREE = TWO + "  - {name: shard-c, url: 'http://shard-c:8086'}\n"


async def watcher_on(
    tmp_path: Path, text: str, clock: FakeClock | None = None
) -> tuple[MapWatcher, list[ShardMap]]:
    path = tmp_path / "shards.yaml"
    path.write_text(text)
    applied: list[ShardMap] = []

    async def apply(new: ShardMap) -> None:
        applied.append(new)

    watcher = MapWatcher(path, load_shard_map(path), apply, clock=clock or FakeClock())
    return watcher, applied


async def test_check_applies_a_changed_valid_file(tmp_path: Path) -> None:
    watcher, applied = await watcher_on(tmp_path, TWO)
    watcher.path.write_text(THREE)
    assert await watcher.check() is True
    assert [len(m.shards) for m in applied] == [3]
    assert watcher.current is applied[0]


@pytest.mark.parametrize(
    "bad",
    ["shards: []\n", "replication: 5\n" + TWO, "shards: [\n"],
    ids=["empty", "replication", "yaml"],
)
async def test_check_keeps_the_old_map_on_a_bad_file(tmp_path: Path, bad: str) -> None:
    watcher, applied = await watcher_on(tmp_path, TWO)
    old = watcher.current
    watcher.path.write_text(bad)
    assert await watcher.check() is False
    assert (applied, watcher.current) == ([], old)
    assert watcher.last_error is not None


async def test_status_says_when_the_map_was_loaded_as_an_iso_time(tmp_path: Path) -> None:
    watcher, _ = await watcher_on(tmp_path, TWO)
    loaded_at = str(watcher.status()["loaded_at"])
    assert loaded_at.endswith("Z")
    assert datetime.fromisoformat(loaded_at).timestamp() * 1000 == T0_MS  # the watcher's clock


async def test_check_of_an_unchanged_file_applies_nothing(tmp_path: Path) -> None:
    watcher, applied = await watcher_on(tmp_path, TWO)
    watcher.path.write_text(TWO.replace("\n", "\n\n"))  # same map, other bytes
    assert await watcher.check() is False
    assert applied == []


async def test_run_checks_every_interval(tmp_path: Path) -> None:
    clock, stop = FakeClock(), asyncio.Event()
    watcher, applied = await watcher_on(tmp_path, TWO, clock)
    running = asyncio.create_task(watcher.run(stop))
    watcher.path.write_text(THREE)
    await clock.advance(4.9)
    seen_before_interval = len(applied)
    await clock.advance(0.2)
    stop.set()
    await running
    assert (seen_before_interval, len(applied)) == (0, 1)
    assert watcher.loaded_at == T0_MS / 1000 + 5


@pytest.fixture
def sighup_ignored() -> Iterator[None]:
    """A SIGHUP that reaches no watcher is ignored: the test fails, the run goes on."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.mark.usefixtures("sighup_ignored")
async def test_run_checks_at_once_on_sighup(tmp_path: Path) -> None:
    clock, stop, applied = FakeClock(), asyncio.Event(), asyncio.Event()
    path = tmp_path / "shards.yaml"
    path.write_text(TWO)

    async def apply(new: ShardMap) -> None:
        applied.set()

    watcher = MapWatcher(path, load_shard_map(path), apply, clock=clock)
    running = asyncio.create_task(watcher.run(stop))
    await clock.advance(1)  # the watcher waits, its handler in place
    path.write_text(THREE)
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.wait_for(applied.wait(), 10)  # off the clock: virtual time stands still
    stop.set()
    await running
    assert clock.monotonic() == 1.0


async def test_router_picks_up_a_new_shard_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "shards.yaml"
    path.write_text(TWO)
    settings = RouterSettings(config_path=str(path), rank_refresh_s=0, reload_check_s=0.1)
    clock = FakeClock()
    app = create_app(settings=settings, connect=connect_to({}), clock=clock)
    async with served(app) as client:
        before = (await client.get("/shards")).json()
        path.write_text(THREE)
        await clock.advance(0.3)
        after = (await client.get("/shards")).json()
    assert [len(before["shards"]), len(after["shards"])] == [2, 3]
    assert before["map_version"] != after["map_version"]


@pytest.mark.parametrize(
    "url",
    ["http://admin:s3cret-pw@shard-c:8086", "http://admin:s3cret-pw@shard-c:port"],
    ids=["credentials", "credentials-in-a-malformed-url"],
)
async def test_reload_error_never_shows_a_password(tmp_path: Path, url: str) -> None:
    watcher, _ = await watcher_on(tmp_path, TWO)
    watcher.path.write_text(TWO + f"  - {{name: shard-c, url: '{url}'}}\n")
    assert await watcher.check() is False
    assert "shards[2].url" in str(watcher.status()["last_reload_error"])
    assert "s3cret-pw" not in str(watcher.status())
