"""The page's first load in headless Chromium: the HTML, its assets and 24 h of btcusd
drawn, with every series of the data set on the shards.

A local cluster holds a day of simulated prices (series x 1,440 one-minute ticks), the
real router runs in its own process, and the system's Chromium (tests/browser.py) opens
``/?pair=btcusd&window=-24h`` in a fresh browser context per run (an empty HTTP cache:
a first visit). A run's time is from navigation start to uPlot's draw of the answer
(``pageState.chartDrawnAt``, on the page's own clock); the API request's own time is
taken from the page's Resource Timing entry, to show where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
from dataclasses import dataclass

import httpx2

from bench.query import PAIR, cluster_of, load, settle, start_router, wait_for_table, write_config
from bench.report import write_section
from federation.core.shardmap import ShardMap
from federation.tools.localcluster import free_port
from tests.browser import chromium

GOAL_S = 1.0
SHARDS = 2


@dataclass
class Load:
    total_s: float  # navigation start to the chart drawn
    html_s: float  # navigation start to the HTML's last byte
    api_start_s: float  # navigation start to the GET /btcusd request sent
    api_s: float  # the GET /btcusd request, start to last byte
    draw_s: float  # its last byte to the chart drawn: JSON parsed, table and chart built
    points: int


def page_loads(base: str, runs: int) -> list[Load]:
    loads = []
    with chromium() as browser:
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/?pair={PAIR}&window=-24h")
            page.wait_for_function("pageState.loads > 0 && pageState.chartDrawnAt !== null")
            figures = page.evaluate(
                """() => {
                  const api = performance.getEntriesByType("resource")
                    .find((e) => new URL(e.name).pathname === "/btcusd");
                  const nav = performance.getEntriesByType("navigation")[0];
                  return [pageState.chartDrawnAt, nav.responseEnd, api.startTime,
                          api.responseEnd - api.startTime,
                          pageState.chartDrawnAt - api.responseEnd, pageState.answer.prices.length];
                }"""
            )
            *seconds, points = figures
            drawn, html, api_start, api, draw = (ms / 1000 for ms in seconds)
            loads.append(Load(drawn, html, api_start, api, draw, points))
            context.close()
    return loads


def measure(shard_map: ShardMap, runs: int) -> tuple[list[Load], float]:
    port = free_port()
    config = write_config(shard_map)
    # The first rank table reads a day of every series; on a busy machine its queries
    # take longer than a request's default shard timeout.
    router = start_router(config, port, shard_timeout_s=600)
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> None:
            async with httpx2.AsyncClient(timeout=120) as http:
                await wait_for_table(http, f"{base}/{PAIR}")

        asyncio.run(ready())
        page_loads(base, 1)  # the router's first answers warm its caches, not the browser's
        loads = page_loads(base, runs)
        return loads, os.getloadavg()[0]  # other work on the machine meanwhile
    finally:
        router.terminate()
        router.wait()
        config.unlink()


def main(quick: bool = False) -> None:
    series = 500 if quick else 14_000
    runs = 3 if quick else 10
    with tempfile.TemporaryDirectory() as root, cluster_of(SHARDS, root) as local:
        shard_map = ShardMap(local.shard_map.shards, database="page")
        print(f"{series} series on {SHARDS} shards", flush=True)
        asyncio.run(load(shard_map, series))
        settle(local)
        loads, load_average = measure(shard_map, runs)
    for one in loads:
        print(f"    {one}", flush=True)
    write_section("page", report(loads, series, runs, load_average, quick))


def report(loads: list[Load], series: int, runs: int, load_average: float, quick: bool) -> str:
    total = [x.total_s for x in loads]
    p50, worst = statistics.median(total), max(total)
    met = "met" if worst <= GOAL_S else "not met"
    return "\n".join(
        [
            "## The page: first load of the pair view",
            "",
            f"`python -m bench page`{' --quick' if quick else ''}: {series:,} series x 24 h "
            f"on {SHARDS} shards, the router in its own process, headless Chromium (system "
            f"package) on the same {os.cpu_count()}-core machine; {runs} loads of "
            f"`/?pair={PAIR}&window=-24h`, each in a fresh browser context (empty cache), "
            "timed from navigation start to uPlot's draw of the answer.",
            "",
            "| | p50 | worst |",
            "| --- | ---: | ---: |",
            f"| HTML received | {statistics.median(x.html_s for x in loads) * 1000:.0f} ms "
            f"| {max(x.html_s for x in loads) * 1000:.0f} ms |",
            f"| `GET /{PAIR}?duration=-24h` sent (from the page's head) "
            f"| {statistics.median(x.api_start_s for x in loads) * 1000:.0f} ms "
            f"| {max(x.api_start_s for x in loads) * 1000:.0f} ms |",
            f"| `GET /{PAIR}?duration=-24h` ({loads[0].points:,} points) "
            f"| {statistics.median(x.api_s for x in loads) * 1000:.0f} ms "
            f"| {max(x.api_s for x in loads) * 1000:.0f} ms |",
            f"| its last byte to the chart drawn (parse, table, uPlot) "
            f"| {statistics.median(x.draw_s for x in loads) * 1000:.0f} ms "
            f"| {max(x.draw_s for x in loads) * 1000:.0f} ms |",
            f"| first load: HTML, assets, 24 h drawn | {p50 * 1000:.0f} ms "
            f"| {worst * 1000:.0f} ms |",
            "",
            f"- Goal: first load at most {GOAL_S:.0f} s at {series:,} series: p50 "
            f"{p50 * 1000:.0f} ms ({'met' if p50 <= GOAL_S else 'not met'}), worst "
            f"{worst * 1000:.0f} ms ({met}).",
            f"- The machine's 1-minute load average at the end of the runs: {load_average:.1f} "
            f"on {os.cpu_count()} cores (other jobs share it; the router, both shards and the "
            "browser take turns on the same cores).",
        ]
    )
