"""`make run`'s command end to end: shards, ingester and router as processes, the first
answer with the whole backfilled window and the rank computed from the raw points, a
shard added and removed by editing the file, and Ctrl-C leaving no influxd behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pandas as pd
import psutil
import pytest

from federation.core.shardmap import load_shard_map
from federation.tools.localcluster import free_port
from tests.integration.conftest import own_statement

pytestmark = pytest.mark.integration


def test_stack_first_answer_has_the_whole_window_and_its_rank_then_follows_the_map(
    tmp_path: Path,
) -> None:
    config = tmp_path / "shards.yaml"
    config.write_text(
        "shards:\n"
        + "".join(
            f"  - {{name: shard-{c}, url: 'http://127.0.0.1:{free_port()}'}}\n" for c in "abc"
        )
    )
    base = config.read_text()
    port = free_port()
    with (tmp_path / "stack.log").open("wb") as log_file:  # the child keeps its own copy
        stack = start_stack(config, port, tmp_path, log_file)
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", timeout=120)
        body = httpx.get(f"http://127.0.0.1:{port}/btcusd", timeout=30).json()
        expected_rank, window_points = rank_from_raw_points(config, "btcusd", body["rank_as_of"])
        with config.open("a") as file:
            file.write(f"  - {{name: shard-d, url: 'http://127.0.0.1:{free_port()}'}}\n")
        shards = wait_for_shards(f"http://127.0.0.1:{port}/shards", 4, timeout=60)
        # The router and the ingester each check the file on their own: wait for both.
        reloads = wait_for_log(tmp_path / "stack.log", f"-> {shards['map_version']}", 2, 30)
        influxds = influxd_children(stack)
        config.write_text(base)  # shard-d leaves the map: its influxd stops, its data stays
        stopped = wait_for_log(tmp_path / "stack.log", "stopped local shards ['shard-d']", 1, 30)
        left = influxd_children(stack)
    finally:
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0
    assert body["rank"] == expected_rank
    assert len(body["prices"]) >= 0.99 * window_points
    assert all(s["up"] for s in shards["shards"])
    assert (reloads, len(influxds), stopped, len(left)) == (2, 4, 1, 3)
    assert (tmp_path / "data" / "shard-d").is_dir()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in influxds)


def influxd_children(stack: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(stack.pid).children(recursive=True)
    return [p for p in children if p.name() == "influxd"]


def rank_from_raw_points(config: Path, pair: str, as_of: str) -> tuple[str, int]:
    """The pair's rank computed with pandas from every shard's raw points in the window
    (as_of - 24 h, as_of], and how many points of the pair the window holds."""
    shard_map = load_shard_map(config)
    end = int(pd.Timestamp(as_of).value // 1_000_000)
    statement = own_statement(
        'SELECT "price", "exchange", "pair" FROM "price" '
        f"WHERE time > {end - 86_400_000}ms AND time <= {end}ms"
    )
    frames = []
    for shard in shard_map.shards:
        params = {"db": shard_map.database, "q": statement.text}
        result = httpx.get(f"{shard.url}/query", params=params, timeout=60).json()["results"][0]
        for series in result.get("series", []):
            frames.append(pd.DataFrame(series["values"], columns=series["columns"]))
    points = pd.concat(frames, ignore_index=True)
    spread = points.groupby(["exchange", "pair"])["price"].std(ddof=1).rename("std").reset_index()
    ranked = spread.sort_values(
        ["std", "exchange", "pair"], ascending=[False, True, True], na_position="last"
    ).reset_index(drop=True)
    first = int(ranked.index[ranked["pair"] == pair][0])
    return f"{first + 1}/{len(ranked)}", int((points["pair"] == pair).sum())


def wait_for_health(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def start_stack(
    config: Path, port: int, tmp_path: Path, log_file: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "federation",
            "--config",
            str(config),
            "stack",
            "--port",
            str(port),
            "--series",
            "200",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env=os.environ | {"PYTHONPATH": "."},
    )


def wait_for_log(path: Path, text: str, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (seen := path.read_text().count(text)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return seen


def wait_for_shards(url: str, count: int, timeout: float) -> dict[str, list[dict[str, object]]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(url, timeout=10).json()
        if len(body["shards"]) == count and all(s["up"] for s in body["shards"]):
            return body  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"{url} never showed {count} shards up within {timeout}s")
