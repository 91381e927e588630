"""`make run`'s command end to end: shards, ingester and router as processes, a shard
added by editing the file, and Ctrl-C leaving no influxd behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

from federation.tools.localcluster import free_port

pytestmark = pytest.mark.integration


def test_stack_serves_btcusd_then_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "shards.yaml"
    config.write_text(
        "shards:\n"
        + "".join(
            f"  - {{name: shard-{c}, url: 'http://127.0.0.1:{free_port()}'}}\n" for c in "abc"
        )
    )
    port = free_port()
    with (tmp_path / "stack.log").open("wb") as log_file:  # the child keeps its own copy
        stack = start_stack(config, port, tmp_path, log_file)
    try:
        body = wait_for_prices(f"http://127.0.0.1:{port}/btcusd", timeout=120)
        with config.open("a") as file:
            file.write(f"  - {{name: shard-d, url: 'http://127.0.0.1:{free_port()}'}}\n")
        shards = wait_for_shards(f"http://127.0.0.1:{port}/shards", 4, timeout=60)
        # The router and the ingester each check the file on their own: wait for both.
        reloads = wait_for_log(tmp_path / "stack.log", f"-> {shards['map_version']}", 2, 30)
        influxds = [
            p for p in psutil.Process(stack.pid).children(recursive=True) if p.name() == "influxd"
        ]
        assert len(influxds) == 4
    finally:
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0
    assert body["rank"].split("/")[1] == "200"
    assert len(body["prices"]) > 1000
    assert all(s["up"] for s in shards["shards"])
    assert reloads == 2
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in influxds)


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


def wait_for_prices(url: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=10)
            body = response.json()
            if response.status_code == 200 and body["rank"] and len(body["prices"]) > 1000:
                return body  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"{url} gave no 24 h of prices within {timeout}s")
