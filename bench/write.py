"""``POST /write`` through the router (uvicorn, 3 local influxd shards) against the same
batches written straight to one influxd, and a gzip bomb against the router:

- batches of 5,000 price lines (14,000 series, one time per tick), plain and gzip,
  alternating router and influxd batch by batch so both see the same machine load;
  per target the median batch time and the lines per second over all batches;
- a gzip body of ~0.5 MB that inflates to 512 MB: its status, time and the router's
  RSS growth (peak, sampled every 5 ms, over the RSS before).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.body import wait_up
from bench.report import write_section
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, die_with_parent, free_port

BATCH = 5_000
SERIES = 14_000
T0_MS = 1_700_000_000_000
MB = 1024 * 1024


@dataclass
class Row:
    target: str
    encoding: str
    batches: int
    lines: int
    p50_ms: float
    lines_per_s: float


def batches(ticks: int) -> list[bytes]:
    lines = [
        f"price,exchange=ex{s % 28},pair=p{s // 28} price={100 + s * 0.01 + t} {T0_MS + t * 60_000}"
        for t in range(ticks)
        for s in range(SERIES)
    ]
    return [("\n".join(lines[i : i + BATCH]) + "\n").encode() for i in range(0, len(lines), BATCH)]


def start_router(root: Path, shard_map: ShardMap, port: int) -> subprocess.Popen[bytes]:
    config = root / "shards.yaml"
    config.write_text(
        "shards:\n" + "".join(f"  - {{name: {s.name}, url: '{s.url}'}}\n" for s in shard_map.shards)
    )
    command = ["-m", "federation", "--config", str(config), "--log-level", "warning", "serve"]
    env = os.environ | {
        "FEDERATION_RANK_REFRESH": "0",
        "FEDERATION_WRITE_SPOOL_DIR": str(root / "spool"),
    }
    return subprocess.Popen(
        [sys.executable, *command, "--port", str(port)], env=env, preexec_fn=die_with_parent
    )


async def throughput(router: str, influxd: str, bodies: list[bytes]) -> list[Row]:
    rows = []
    async with httpx.AsyncClient(timeout=120) as http:
        for encoding in ("plain", "gzip"):
            sent = [gzip.compress(b) for b in bodies] if encoding == "gzip" else bodies
            headers = {"Content-Encoding": "gzip"} if encoding == "gzip" else {}
            times: dict[str, list[float]] = {"router": [], "influxd": []}
            for body in sent:
                for target, url in (("router", router), ("influxd", influxd)):
                    started = time.perf_counter()
                    answer = await http.post(
                        f"{url}/write",
                        params={"db": "crypto", "precision": "ms"},
                        content=body,
                        headers=headers,
                    )
                    times[target].append(time.perf_counter() - started)
                    assert answer.status_code == 204, (target, answer.status_code, answer.text)
            lines = sum(b.count(b"\n") for b in bodies)
            for target, took in times.items():
                rows.append(
                    Row(
                        target,
                        encoding,
                        len(took),
                        lines,
                        statistics.median(took) * 1000,
                        lines / sum(took),
                    )
                )
    return rows


async def bomb(router: str, process: psutil.Process) -> tuple[int, float, float, int]:
    inflated = 512 * MB
    body = gzip.compress(b"cpu v=1\n" * (inflated // 8), compresslevel=9)
    before = process.memory_info().rss
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    async with httpx.AsyncClient(timeout=120) as http:
        started = time.perf_counter()
        answer = await http.post(
            f"{router}/write",
            params={"db": "crypto"},
            content=body,
            headers={"Content-Encoding": "gzip"},
        )
        seconds = time.perf_counter() - started
    done.set()
    await sampler
    return answer.status_code, seconds, (peak - before) / MB, len(body)


def main(quick: bool = False) -> None:
    ticks = 2 if quick else 20
    bodies = batches(ticks)
    with tempfile.TemporaryDirectory() as root:
        shards = ShardMap(
            tuple(Shard(f"shard-{c}", f"http://127.0.0.1:{free_port()}") for c in "abc")
        )
        single = ShardMap((Shard("single", f"http://127.0.0.1:{free_port()}"),))
        with (
            LocalCluster(shards, root=f"{root}/shards", influxd=os.environ.get("INFLUXD")),
            LocalCluster(single, root=f"{root}/single", influxd=os.environ.get("INFLUXD")),
        ):
            port = free_port()
            process = start_router(Path(root), shards, port)
            try:
                asyncio.run(wait_up(port))
                router = f"http://127.0.0.1:{port}"
                rows = asyncio.run(throughput(router, single.shards[0].url, bodies))
                bombed = asyncio.run(bomb(router, psutil.Process(process.pid)))
            finally:
                process.terminate()
                process.wait()
    for row in rows:
        print(f"    {row}", flush=True)
    print(f"    bomb: {bombed}", flush=True)
    write_section("write", report(rows, bombed))


def report(rows: list[Row], bombed: tuple[int, float, float, int]) -> str:
    status, seconds, growth, size = bombed
    lines = [
        f"| {r.target} | {r.encoding} | {r.batches} | {r.p50_ms:.0f} | {r.lines_per_s:,.0f} |"
        for r in rows
    ]
    return "\n".join(
        [
            "## Writes: `POST /write` through the router",
            "",
            f"`python -m bench write` ({os.cpu_count()} cores). Batches of {BATCH:,} price lines"
            f" ({SERIES:,} series, precision ms), each sent to the router (uvicorn, 3 local",
            "influxd shards, replication 1) and then straight to one influxd holding",
            "everything, alternating; gzip bodies compressed before the clock starts.",
            "",
            "| target | body | batches | p50 ms per batch | lines/s |",
            "| --- | --- | --- | --- | --- |",
            *lines,
            "",
            f"A gzip bomb (a {size / MB:.1f} MB body inflating to 512 MB) against the router:"
            f" {status} after {seconds:.2f} s, router RSS growth {growth:.1f} MB"
            " (`FEDERATION_WRITE_MAX_BODY` 25 MB).",
        ]
    )
