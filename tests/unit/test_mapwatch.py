from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import pytest

from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import ShardMap, load_shard_map
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to

TWO = (
    "shards:\n  - {name: shard-a, url: 'http://shard-a:8086'}\n"
    "  - {name: shard-b, url: 'http://shard-b:8086'}\n"
)
THREE = TWO + "  - {name: shard-c, url: 'http://shard-c:8086'}\n"


async def watcher_on(tmp_path: Path, text: str) -> tuple[MapWatcher, list[ShardMap]]:
    path = tmp_path / "shards.yaml"
    path.write_text(text)
    applied: list[ShardMap] = []

    async def apply(new: ShardMap) -> None:
        applied.append(new)

    return MapWatcher(path, load_shard_map(path), apply), applied


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
    assert abs(datetime.fromisoformat(loaded_at).timestamp() - time.time()) < 60


async def test_check_of_an_unchanged_file_applies_nothing(tmp_path: Path) -> None:
    watcher, applied = await watcher_on(tmp_path, TWO)
    watcher.path.write_text(TWO.replace("\n", "\n\n"))  # same map, other bytes
    assert await watcher.check() is False
    assert applied == []


async def test_router_picks_up_a_new_shard_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "shards.yaml"
    path.write_text(TWO)
    settings = RouterSettings(config_path=str(path), rank_refresh_s=0, reload_check_s=0.1)
    app = create_app(settings=settings, connect=connect_to({}))
    async with served(app) as client:
        before = (await client.get("/shards")).json()
        path.write_text(THREE)
        await asyncio.sleep(0.3)
        after = (await client.get("/shards")).json()
    assert [len(before["shards"]), len(after["shards"])] == [2, 3]
    assert before["map_version"] != after["map_version"]
