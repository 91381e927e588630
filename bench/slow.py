"""Clients that open ``GET /btcusd`` and never read, against the real router process
(uvicorn) on three real influxd shards holding btcusd's 24 h on 60 exchanges (85,800
points, an answer of ~6 MB: more than a non-reading client's socket buffers take; on
loopback the router's send buffer alone grows to 4 MB).

Per router configuration: a normal client's idle latency (median of 5); then 200
connections that send ``GET /btcusd`` and never read (receive buffers of 4 KiB); once
the router has answered all of them (a status line waits in each one's buffer) or 10 s
have passed, a normal client, timed, its answer checked whole; once the router's CPU is
quiet (their answers wait on full buffers), another; the router's shard connections in
use (``federation_shard_connections`` on /metrics) sampled every 0.5 s until they are
back to none; at the end, what the 200 got (the status line waiting in their buffers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
import httpx2
import numpy as np
import pandas as pd
import psutil

from bench.body import wait_up
from bench.report import write_section
from federation.core import influx
from federation.core.credentials import Credentials
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, die_with_parent, free_port
from ingest.writer import ShardWriter

# 1,430 minutes, so that every point stays inside the answer's -24h for the whole run.
EXCHANGES, MINUTES, STALLED = 60, 1430, 200
IN_USE = re.compile(r'^federation_shard_connections\{state="in_use"\} (\S+)$', re.MULTILINE)
CONFIGS = {
    "defaults (send timeout 10 s, 30 streams, hot cache on)": {},
    "defaults, hot cache off": {"FEDERATION_HOT_CACHE_BYTES": "0"},
    "limits and hot cache off (send timeout 600 s, 10000 streams)": {
        "FEDERATION_SEND_TIMEOUT": "600",
        "FEDERATION_MAX_STREAMS": "10000",
        "FEDERATION_HOT_CACHE_BYTES": "0",
    },
}


@dataclass
class Result:
    config: str
    idle_s: float  # a normal client's median latency before
    answered_s: float | None  # until every never-reading client had its status line
    at_once: tuple[float, str]  # a normal client then: seconds, "whole" or what was wrong
    settled_s: float | None  # until the router's CPU went quiet (None: not in 30 s)
    settled: tuple[float, str]  # a normal client then
    idle_after_s: float | None  # until no shard connection was in use (None: not in 40 s)
    in_use: list[int]  # shard connections in use, every 0.5 s from the first stalled request
    stalled_got: dict[str, int]  # status lines the never-reading clients were sent


async def write_prices(shard_map: ShardMap) -> None:
    now = int(time.time() * 1000)
    times = now - 30_000 - 60_000 * np.arange(MINUTES)
    frame = pd.concat(
        pd.DataFrame({"time": times, "exchange": f"ex{e:02d}", "pair": p, "price": 100.0 + e})
        for p, exchanges in (("btcusd", EXCHANGES), ("ethusd", 5), ("solusd", 5))
        for e in range(exchanges)
    )
    async with httpx2.AsyncClient(timeout=60) as http:
        clients = influx.clients_for(shard_map, http, credentials=Credentials())
        await influx.ensure_databases(clients, timeout_s=30)
        await ShardWriter(shard_map, clients).write(frame)


def start_router(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ["-m", "federation", "--config", str(config), "--log-level", "critical", "serve"]
    return subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        env=os.environ | env,
        preexec_fn=die_with_parent,
    )


def stalled_client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /btcusd HTTP/1.1\r\nHost: router\r\n\r\n")
    return sock


async def all_answered(stalled: list[socket.socket], opened: float) -> float | None:
    """Until every never-reading client has its status line waiting in its buffer (the
    router has taken every request): the seconds since they were opened (None: not in
    10 s). Peeking reads nothing out of the buffers."""
    for sock in stalled:
        sock.setblocking(False)
    for _ in range(100):
        waiting = 0
        for sock in stalled:
            with contextlib.suppress(BlockingIOError):
                waiting += bool(sock.recv(1, socket.MSG_PEEK))
        if waiting == len(stalled):
            return time.perf_counter() - opened
        await asyncio.sleep(0.1)
    return None


def status_line(sock: socket.socket) -> str:
    try:
        head = sock.recv(64)
    except OSError:
        return "nothing"
    return head.split(b"\r\n", 1)[0].decode(errors="replace")[9:12] or "nothing"


async def normal(http: httpx.AsyncClient, base: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        response = await http.get(base + "/btcusd")
    except httpx.HTTPError as exc:
        return time.perf_counter() - started, type(exc).__name__
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return seconds, f"{response.status_code} {response.json().get('limit', '')}"
    body = response.json()
    n = len(body["prices"])
    if body["partial"] or n != EXCHANGES * MINUTES:
        return seconds, f"partial={body['partial']}, {n:,} points"
    return seconds, "whole"


async def quiet(router: psutil.Process, opened: float) -> float | None:
    """Until the router's CPU is under 10 % over half a second (the never-reading
    clients' answers have filled their buffers and wait): seconds since ``opened``."""
    for _ in range(60):
        before = sum(router.cpu_times()[:2])
        await asyncio.sleep(0.5)
        if sum(router.cpu_times()[:2]) - before < 0.05:
            return time.perf_counter() - opened
    return None


async def measure(name: str, port: int, router: psutil.Process) -> Result:
    base = f"http://127.0.0.1:{port}"
    await wait_up(port)
    async with httpx.AsyncClient(timeout=60) as http:
        idle = [(await normal(http, base))[0] for _ in range(6)][1:]  # the first builds the rank
        in_use: list[int] = []

        async def sample() -> None:
            while True:
                try:
                    text = (await http.get(base + "/metrics", timeout=5)).text
                except httpx.HTTPError as exc:
                    print(f"    /metrics: {type(exc).__name__}", flush=True)
                    text = ""
                match = IN_USE.search(text)
                in_use.append(int(float(match.group(1))) if match else -1)
                await asyncio.sleep(0.5)

        opened = time.perf_counter()
        sampling = asyncio.create_task(sample())
        stalled = [stalled_client(port) for _ in range(STALLED)]
        answered_s = await all_answered(stalled, opened)
        at_once = await normal(http, base)
        settled_s = await quiet(router, opened)
        settled = await normal(http, base)
        idle_after = None
        for _ in range(80):  # up to 40 s
            await asyncio.sleep(0.5)
            if in_use and in_use[-1] == 0:
                idle_after = time.perf_counter() - opened
                break
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    got: dict[str, int] = {}
    for sock in stalled:
        status = status_line(sock)
        got[status] = got.get(status, 0) + 1
        sock.close()
    return Result(
        name, median(idle), answered_s, at_once, settled_s, settled, idle_after, in_use, got
    )


async def run() -> list[Result]:
    shards = tuple(Shard(f"shard-{c}", f"http://127.0.0.1:{free_port()}") for c in "abc")
    shard_map = ShardMap(shards)
    results = []
    with tempfile.TemporaryDirectory() as root, LocalCluster(shard_map, root=root):
        await write_prices(shard_map)
        config = Path(root) / "shards.yaml"
        lines = [f"  - {{name: {s.name}, url: '{s.url}'}}" for s in shards]
        config.write_text("shards:\n" + "\n".join(lines) + "\n")
        for name, env in CONFIGS.items():
            print(f"  {name}", flush=True)
            port = free_port()
            process = start_router(config, port, env)
            try:
                results.append(await measure(name, port, psutil.Process(process.pid)))
            finally:
                process.terminate()
                process.wait()
            print(f"    {results[-1]}", flush=True)
    return results


def seconds(value: float | None, bound: str) -> str:
    return f"not within {bound}" if value is None else f"{value:.1f} s"


def main(quick: bool = False) -> None:
    results = asyncio.run(run())
    rows = []
    for r in results:
        bound = 2 * r.idle_s + 1
        within = [
            "yes" if verdict == "whole" and took <= bound else "no"
            for took, verdict in (r.at_once, r.settled)
        ]
        got = ", ".join(f"{n}: {status}" for status, n in sorted(r.stalled_got.items()))
        series = " ".join(str(n) for n in r.in_use[:80:2])
        rows.append(
            f"| {r.config} | {r.idle_s:.3f} | {seconds(r.answered_s, '10 s')} |"
            f" {r.at_once[0]:.3f} ({r.at_once[1]}), {within[0]} |"
            f" {seconds(r.settled_s, '30 s')} | {r.settled[0]:.3f} ({r.settled[1]}), {within[1]} |"
            f" {seconds(r.idle_after_s, '40 s')} | {got} | {series} |"
        )
    write_section(
        "slow",
        "\n".join(
            [
                "## Clients that never read",
                "",
                f"`python -m bench slow` ({os.cpu_count()} cores): the router (uvicorn) on three"
                f" local influxd holding btcusd's 24 h on {EXCHANGES} exchanges",
                f"({EXCHANGES * MINUTES:,} points, ~6 MB of JSON). {STALLED} connections send"
                " `GET /btcusd` and never read (4 KiB receive buffers). A normal client asks",
                "the same *at once*, when all of them have their status line (*answered*, from",
                "the first of them), and again once the router's CPU is quiet (*settled*: their",
                "answers fill the buffers and wait). Each is whole or not, and *yes* when whole",
                "within 2 x *idle* + 1 s (*idle*: its median latency before, 5 requests).",
                "*Pool idle* is when the router's shard connections in use",
                "(`federation_shard_connections`) are back to 0; the last column samples them",
                "every second from the first stalled request (up to 40 s).",
                "",
                "What the figures say: with the hot cache on (the default), btcusd is held",
                "after the first request, so the 200 answers come from memory: each is one",
                "shared copy of the bytes, holds no shard connection and no stream slot, and",
                "the normal client is served at once, whole (the pool never has a connection in",
                "use). With the cache off, past `FEDERATION_MAX_STREAMS` the router refuses at",
                "once (503, the limit named), and while the answers it admitted are still being",
                "made (each fills the buffers, a few MB on loopback, before its send waits) a",
                "normal client is refused too; once they wait on their clients, a normal client",
                "takes the place of the longest stalled one and is served, and each stalled",
                "answer is abandoned `FEDERATION_SEND_TIMEOUT` after its send began to wait, its",
                "shard connections back in the pool. With the limits off too, the stalled",
                "answers take every shard connection and keep them.",
                "",
                "| router | idle s | answered | normal at once s | settled | normal then s |"
                " pool idle | the 200 got | shard connections in use |",
                "| --- | ---: | ---: | --- | ---: | --- | ---: | --- | --- |",
                *rows,
            ]
        ),
    )
