"""Hostile request bodies against the real router process (uvicorn), with no shard
behind it (bodies never reach one):

- a 300 MB ``POST /alerts`` declared by ``Content-Length``, and the same sent chunked:
  the time until the answer, its status, the bytes the client got to send before it,
  and the router's RSS growth (peak, sampled every 5 ms, over the RSS before);
- a body that declares 100 bytes and sends 4: the time until the answer and its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.report import write_section
from federation.tools.localcluster import die_with_parent, free_port

MB = 1024 * 1024
SIZE = 300 * MB
CHUNK = 64 * 1024


@dataclass
class Result:
    case: str
    status: int
    seconds: float
    sent_mb: float
    rss_growth_mb: float


def start_router(root: Path, port: int) -> subprocess.Popen[bytes]:
    config = root / "shards.yaml"  # one shard nobody answers on: bodies never reach it
    config.write_text(f"shards:\n  - {{name: shard-a, url: 'http://127.0.0.1:{free_port()}'}}\n")
    command = ["-m", "federation", "--config", str(config), "--log-level", "warning", "serve"]
    return subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        env=os.environ | {"FEDERATION_RANK_REFRESH": "0"},
        preexec_fn=die_with_parent,  # an interrupted benchmark leaves no router behind
    )


async def wait_up(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("the router did not start")


async def send(port: int, case: str, router: psutil.Process) -> Result:
    """One request whose body is ``case``; sends until the answer comes or the router
    closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "POST /alerts HTTP/1.1\r\nHost: router\r\nContent-Type: application/json\r\n"
    head += {
        "content-length": f"Content-Length: {SIZE}\r\n",
        "chunked": "Transfer-Encoding: chunked\r\n",
        "stalled": "Content-Length: 100\r\n",
    }[case]
    before = router.memory_info().rss
    peak, sent = before, 0
    started = time.perf_counter()

    async def body() -> None:
        nonlocal sent
        if case == "stalled":
            writer.write(b'{"we')
            await asyncio.Event().wait()
        chunk = b"x" * CHUNK
        framed = f"{CHUNK:x}\r\n".encode() + chunk + b"\r\n" if case == "chunked" else chunk
        with contextlib.suppress(ConnectionError):  # the router closes once it has answered
            while sent < SIZE:
                writer.write(framed)
                await writer.drain()
                sent += CHUNK

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, router.memory_info().rss)
            await asyncio.sleep(0.005)

    writer.write(head.encode() + b"\r\n")
    tasks = [asyncio.create_task(body()), asyncio.create_task(sample())]
    status_line = await reader.readline()
    seconds = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    status = int(status_line.split()[1]) if status_line else 0
    return Result(case, status, seconds, sent / MB, (peak - before) / MB)


async def measure(port: int, router: psutil.Process) -> list[Result]:
    await wait_up(port)
    return [await send(port, case, router) for case in ("content-length", "chunked", "stalled")]


def main(quick: bool = False) -> None:
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        process = start_router(Path(root), port)
        try:
            results = asyncio.run(measure(port, psutil.Process(process.pid)))
        finally:
            process.terminate()
            process.wait()
    for result in results:
        print(f"    {result}", flush=True)
    write_section("body", report(results))


def report(results: list[Result]) -> str:
    rows = [
        f"| {r.case} | {r.status} | {r.seconds:.3f} | {r.sent_mb:.1f} | {r.rss_growth_mb:.1f} |"
        for r in results
    ]
    return "\n".join(
        [
            "## A 300 MB body",
            "",
            f"`python -m bench body` ({os.cpu_count()} cores; the router on uvicorn with its"
            " defaults, `FEDERATION_MAX_BODY` 16 KiB and `FEDERATION_BODY_TIMEOUT` 10 s).",
            "`content-length` declares 300 MB; `chunked` sends 300 MB without a length;",
            "`stalled` declares 100 bytes and sends 4. Time is until the status line;",
            "sent is what the client wrote before it; RSS growth is the router's peak over",
            "its RSS before the request.",
            "",
            "| body | status | seconds | sent MB | router RSS growth MB |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
