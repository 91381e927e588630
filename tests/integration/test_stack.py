"""`make run`'s command end to end: shards, ingester and router as processes, stopped by
Ctrl-C with no influxd left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from federation.localcluster import free_port

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
    stack = subprocess.Popen(
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
        stderr=subprocess.DEVNULL,
        env=os.environ | {"PYTHONPATH": "."},
    )
    try:
        body = wait_for_prices(f"http://127.0.0.1:{port}/btcusd", timeout=120)
        influxds = [
            p for p in psutil.Process(stack.pid).children(recursive=True) if p.name() == "influxd"
        ]
        assert len(influxds) == 3
    finally:
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0
    assert body["rank"].split("/")[1] == "200"
    assert len(body["prices"]) > 1000
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in influxds)


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
