"""GET /{pair} against data sizes, beside InfluxDB's own answer and the original.

For each data set (series x 24 h of 1-minute points) and shard count, a local cluster
holds the data, and a router process (the real one, on uvicorn) answers. Measured in
the same run, on the same data, with the same minimal client (``http.client``, one
keep-alive connection per server, ``Accept-Encoding: identity``, the body read as
bytes and not parsed):

- router: GET /btcusd (24 h, all exchanges), end to end, sequential p50/p99, and the
  router process's CPU per answer (from /proc); requests/s with 50 concurrent clients,
  during which the router's peak RSS is sampled; the hot cache off, so every answer
  takes the cold path (the pair's first request: every shard asked, merged, encoded);
- direct: the same pair's query sent straight to the shard that owns it, in each of
  InfluxDB's answer forms (:data:`FORMS`: JSON and MessagePack); the fastest form's
  p50 is the floor;
- original: on one InfluxDB, the price query and then the on-demand STDDEV rank over all
  series, one after the other, as the original service did;
- cold rank: the first request for a window no table holds (-6h), built on demand.

The router's requests and every direct form alternate, round after round, so drift on a
shared machine hits all of them alike. ``BENCH_QUERY_SERIES`` and ``BENCH_QUERY_SHARDS``
(comma-separated) choose the configurations (default 1,000, 5,000 and 14,000 series on
1 and 4 shards; the original is measured on 1 shard).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psutil

from bench.report import IMG, command, write_section
from federation.core.clock import now_ms
from federation.core.credentials import Credentials
from federation.core.durations import Duration
from federation.core.influx import InfluxClient, clients_for, ensure_databases
from federation.core.influxql import prices_query, stddev_query
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, die_with_parent, free_port
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter

PAIR = "btcusd"
# Every answer measured here is a cold one: with the hot cache on, every request after
# the first would be served from memory (measured by ``python -m bench hot``).
COLD = {"FEDERATION_HOT_CACHE_BYTES": "0"}
DAY = Duration(24, "h")
# InfluxDB's answer forms for the same query, JSON and MessagePack (``Accept``); the
# router asks for MessagePack, epoch=ms, chunked, 5,000 a chunk.
MSGPACK = "application/x-msgpack"
CHUNKED_MS = {"epoch": "ms", "chunked": "true"}
FORMS: dict[str, tuple[dict[str, str], str]] = {
    "plain": ({}, "application/json"),
    "epoch=ms": ({"epoch": "ms"}, "application/json"),
    "chunked": ({"chunked": "true"}, "application/json"),
    "epoch=ms, chunked": (CHUNKED_MS, "application/json"),
    "epoch=ms, chunked, 2,000 a chunk": (CHUNKED_MS | {"chunk_size": "2000"}, "application/json"),
    "epoch=ms, chunked, 5,000 a chunk": (CHUNKED_MS | {"chunk_size": "5000"}, "application/json"),
    "msgpack, epoch=ms": ({"epoch": "ms"}, MSGPACK),
    "msgpack, epoch=ms, chunked, 2,000 a chunk": (CHUNKED_MS | {"chunk_size": "2000"}, MSGPACK),
    "msgpack, epoch=ms, chunked, 5,000 a chunk": (CHUNKED_MS | {"chunk_size": "5000"}, MSGPACK),
}


@dataclass
class Result:
    series: int
    shards: int
    points: int  # points of PAIR in 24 h
    router_p50: float
    router_p99: float
    router_cpu: float  # the router process's CPU seconds per answer
    direct: dict[str, float]  # p50 of each form of FORMS
    rps: float
    rss_growth_mb: float
    cold_rank_s: float
    original_s: float | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each answer

    @property
    def fastest(self) -> str:
        return min(self.direct, key=self.direct.__getitem__)

    @property
    def direct_p50(self) -> float:
        return self.direct[self.fastest]


class RawClient:
    """The least a client can do: one keep-alive connection, the body read as bytes."""

    def __init__(self, url: str, timeout: float | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self._connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=timeout
        )

    def warm(self, path: str, params: dict[str, str] | None = None) -> None:
        """One untimed request, on a new connection if the server closed the idle one."""
        try:
            self.get(path, params)
        except (http.client.RemoteDisconnected, ConnectionError):
            self._connection.close()
            self.get(path, params)

    def get(
        self,
        path: str,
        params: dict[str, str] | None = None,
        encoding: str = "identity",
        accept: str = "application/json",
    ) -> tuple[float, bytes]:
        """The seconds the answer took and its body, as sent (gzipped if asked)."""
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        started = time.perf_counter()
        headers = {"Accept-Encoding": encoding, "Accept": accept}
        self._connection.request("GET", target, headers=headers)
        response = self._connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
        return elapsed, body

    def close(self) -> None:
        self._connection.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far, as /proc counts it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(shard_map: ShardMap, series: int) -> None:
    async with httpx2.AsyncClient(timeout=120) as http:
        clients = clients_for(shard_map, http, credentials=Credentials(), timeout=120)
        await ensure_databases(clients)
        writer, end = ShardWriter(shard_map, clients), now_ms() // 60_000 * 60_000
        started, written = time.perf_counter(), 0
        for chunk in SimulatedMarket(series).history(end - 86_400_000, end + 1):
            written += (await writer.write(chunk)).points
        print(f"    loaded {written:,} points in {time.perf_counter() - started:.0f}s", flush=True)


async def timed(call: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def alternate(
    router: RawClient, router_pid: int, owner: RawClient, database: str, runs: int
) -> tuple[list[float], float, dict[str, list[float]], dict[str, int]]:
    """Router and every direct form, one after the other, ``runs`` rounds: the router's
    latencies and CPU per answer, each form's latencies, and each answer's size."""
    query = {"db": database, "q": prices_query(PAIR, DAY).text}
    routed: list[float] = []
    cpu = 0.0
    direct: dict[str, list[float]] = {form: [] for form in FORMS}
    sizes: dict[str, int] = {}
    router.warm(f"/{PAIR}")
    owner.warm("/query", query)
    for _ in range(runs):
        before = cpu_seconds(router_pid)
        elapsed, body = router.get(f"/{PAIR}")
        cpu += cpu_seconds(router_pid) - before
        routed.append(elapsed)
        sizes["router"] = len(body)
        for form, (params, accept) in FORMS.items():
            elapsed, body = owner.get("/query", query | params, accept=accept)
            direct[form].append(elapsed)
            sizes[form] = len(body)
    return routed, cpu / runs, direct, sizes


async def measure(shard_map: ShardMap, series: int, runs: int) -> Result:
    port = free_port()
    config = await asyncio.to_thread(write_config, shard_map)
    router = await asyncio.to_thread(start_router, config, port, 60, COLD)
    url = f"http://127.0.0.1:{port}/{PAIR}"
    raw_router = RawClient(url)
    owner = RawClient(shard_map.by_name(shard_map.owners(PAIR)[0]).url)
    try:
        async with httpx2.AsyncClient(timeout=120) as http:
            body = await wait_for_table(http, url)
            await wait_for_refresh(http, url, body)
            routed, cpu, direct, sizes = alternate(
                raw_router, router.pid, owner, shard_map.database, runs
            )
            started = time.perf_counter()
            await http.get(url, params={"duration": "-6h"})
            cold = time.perf_counter() - started
            rps, growth = await load_test(http, url, psutil.Process(router.pid))
    finally:
        raw_router.close()
        owner.close()
        router.terminate()
        await asyncio.to_thread(router.wait)
        await asyncio.to_thread(config.unlink)
    prices = body["prices"]
    assert isinstance(prices, list)
    return Result(
        series,
        len(shard_map.shards),
        len(prices),
        statistics.median(routed),
        pct(routed, 0.99),
        cpu,
        {form: statistics.median(times) for form, times in direct.items()},
        rps,
        growth,
        cold,
        sizes=sizes,
    )


def write_config(shard_map: ShardMap) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write(
            f"database: {shard_map.database}\nshards:\n"
            + "".join(f"  - {{name: {s.name}, url: '{s.url}'}}\n" for s in shard_map.shards)
        )
    return Path(config.name)


def start_router(
    config: Path, port: int, shard_timeout_s: float = 60, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The real router, in its own process (so its RSS is its own), with ``env`` added to
    this process's environment."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "federation",
            "--config",
            str(config),
            "--log-level",
            "warning",
            "serve",
            "--port",
            str(port),
        ],
        env=os.environ | {"FEDERATION_SHARD_TIMEOUT": str(shard_timeout_s)} | (env or {}),
        preexec_fn=die_with_parent,  # an interrupted benchmark leaves no router behind
    )


async def answer_when(
    http: httpx2.AsyncClient,
    url: str,
    ready: Callable[[dict[str, object]], bool],
    what: str,
    params: dict[str, str] | None = None,
    seconds: float = 300,
) -> dict[str, object]:
    """The router's answer at ``url`` once ``ready`` says so, asked every 0.5 s for up
    to ``seconds`` (an error or a body that is not JSON counts as not yet)."""
    for _ in range(int(seconds * 2)):
        try:
            body: dict[str, object] = (await http.get(url, params=params)).json()
            if ready(body):
                return body
        except (httpx2.HTTPError, ValueError):
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the router never {what}")


async def wait_for_table(http: httpx2.AsyncClient, url: str) -> dict[str, object]:
    """The first answer with a complete first rank table."""
    return await answer_when(
        http, url, lambda b: "rank_as_of" in b and not b["partial"], "built its rank table"
    )


async def wait_for_refresh(http: httpx2.AsyncClient, url: str, body: dict[str, object]) -> None:
    """Until the router's next minute refresh has ended (its table's time moved on):
    the rounds then have the best part of a minute before the next one (at 14,000
    series a refresh among them took tens of ms of CPU from some answers). Asked of the
    1 h window, whose table every refresh rebuilds too: a cheaper answer to poll."""

    def refreshed(now: dict[str, object]) -> bool:
        return now.get("rank_as_of") != body.get("rank_as_of") and not now["partial"]

    await answer_when(
        http, url, refreshed, "refreshed its rank table", {"duration": "-1h"}, seconds=150
    )


async def load_test(
    http: httpx2.AsyncClient, url: str, process: psutil.Process, clients: int = 50
) -> tuple[float, float]:
    """Requests/s with ``clients`` concurrent 24 h requests, and the RSS growth meanwhile."""
    base = process.memory_info().rss
    peak = base
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    await asyncio.gather(*(http.get(url) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    return clients / elapsed, (peak - base) / 2**20


async def original(shard_map: ShardMap, runs: int) -> float:
    """The original's request on one InfluxDB: prices, then the rank, one after the other."""
    async with httpx2.AsyncClient(timeout=600) as http:
        client = InfluxClient(shard_map.shards[0], http, shard_map.database, timeout=600)

        async def request() -> None:
            await client.query(prices_query(PAIR, DAY))
            await client.query(stddev_query(DAY))

        return statistics.median(await timed(request, runs))


def settle(local: LocalCluster, timeout_s: float = 300.0) -> None:
    """Wait for the shards to finish compacting what was just loaded (their CPU falls
    below a tenth of a core), so that queries are measured, not compactions."""
    processes = [psutil.Process(s.process.pid) for s in local.shards.values() if s.process]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
        time.sleep(2)
        after = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
        if (after - before) / 2 < 0.1:
            return
    print("    shards still busy after the wait; measuring anyway", flush=True)


def cluster_of(shards: int, root: str) -> LocalCluster:
    names = [Shard(f"shard-{i}", f"http://127.0.0.1:{free_port()}") for i in range(shards)]
    return LocalCluster(ShardMap(tuple(names)), root=root, influxd=os.environ.get("INFLUXD"))


def configurations(quick: bool) -> tuple[list[int], list[int]]:
    """(series counts, shard counts): the environment's, else the defaults."""
    series = os.environ.get("BENCH_QUERY_SERIES") or ("200,500" if quick else "1000,5000,14000")
    shards = os.environ.get("BENCH_QUERY_SHARDS") or ("1,2" if quick else "1,4")
    return [int(n) for n in series.split(",")], [int(n) for n in shards.split(",")]


ENV = ("BENCH_QUERY_SERIES", "BENCH_QUERY_SHARDS", "BENCH_QUERY_RUNS")


def main(quick: bool = False) -> None:
    sizes, shard_counts = configurations(quick)
    runs = int(os.environ.get("BENCH_QUERY_RUNS") or (5 if quick else 20))
    results: list[Result] = []
    for shards in shard_counts:
        with tempfile.TemporaryDirectory() as root, cluster_of(shards, root) as local:
            for series in sizes:
                shard_map = ShardMap(local.shard_map.shards, database=f"s{series}")
                print(f"{series} series on {shards} shard(s)", flush=True)
                asyncio.run(load(shard_map, series))
                settle(local)
                result = asyncio.run(measure(shard_map, series, runs))
                if shards == 1:
                    result.original_s = asyncio.run(original(shard_map, 1 if series > 1000 else 3))
                print(f"    {result}", flush=True)
                results.append(result)
    write_section("query", report(results, quick, runs))
    plot(results)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def report(results: list[Result], quick: bool, runs: int) -> str:
    forms = " | ".join(f"direct, {form}" for form in FORMS)
    lines = [
        "## Queries: `GET /btcusd` (24 h, all exchanges)",
        "",
        f"`{command('query', quick, ENV)}` ({len(results)} configurations, {runs} rounds each; "
        f"{os.cpu_count()} cores shared with other jobs, every shard and the router on "
        "this one machine; load average "
        f"{os.getloadavg()[0]:.1f} at the end). One client for everything: Python's "
        "`http.client`, a keep-alive connection per server, `Accept-Encoding: identity`, "
        "the body read as bytes and not parsed. The router runs with its hot cache off "
        "(`FEDERATION_HOT_CACHE_BYTES=0`), so every answer is a cold one: every shard "
        "asked, the prices merged and encoded. Each round asks the router, then the "
        "owning shard directly in each of InfluxDB's answer forms; *direct* is the "
        "fastest form's p50, and *router/direct* compares the router's whole answer with "
        "it. Router CPU is the router process's user+system time per answer "
        "(/proc). The rounds start right after one of the router's minute refreshes of "
        "its rank table has ended, so that none lands among them: a refresh is the "
        "background's cost (`python -m bench refresh`), not an answer's. "
        "Requests/s and the router's "
        "RSS growth with 50 concurrent 24 h requests; cold rank is the first `-6h` request "
        "(a window no table holds). *original*: on the 1-shard cluster, the price query "
        "then the on-demand STDDEV rank, one after the other, as the original service did.",
        "",
        "| series | shards | points | router p50 | router p99 | router CPU/answer "
        "| direct p50 (fastest form) | router/direct | req/s (50 conc.) | RSS growth "
        "| cold rank -6h | original | original/router |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        original = f"{r.original_s:.2f} s" if r.original_s else ""
        speedup = f"{r.original_s / r.router_p50:.0f}x" if r.original_s else ""
        lines.append(
            f"| {r.series:,} | {r.shards} | {r.points:,} | {ms(r.router_p50)} "
            f"| {ms(r.router_p99)} | {ms(r.router_cpu)} | {ms(r.direct_p50)} ({r.fastest}) "
            f"| {r.router_p50 / r.direct_p50:.2f} | {r.rps:.1f} | {r.rss_growth_mb:.0f} MB "
            f"| {r.cold_rank_s:.2f} s | {original} | {speedup} |"
        )
    lines += [
        "",
        "Each direct form's p50 (bytes of the answer), beside the router's:",
        "",
        f"| series | shards | router | {forms} |",
        "|---:|---:|" + "---:|" * (len(FORMS) + 1),
    ]
    for r in results:
        cells = " | ".join(f"{ms(r.direct[f])} ({r.sizes[f] / 1e6:.2f} MB)" for f in FORMS)
        lines.append(
            f"| {r.series:,} | {r.shards} | {ms(r.router_p50)} "
            f"({r.sizes['router'] / 1e6:.2f} MB) | {cells} |"
        )
    lines += ["", *goals(results), "", "![latency](img/query-latency.png)", ""]
    return "\n".join(lines)


def goals(results: list[Result]) -> list[str]:
    """The issue's goals, each as measured in this run (where the run has the data)."""
    by = {(r.series, r.shards): r for r in results}
    big = max(r.series for r in results)
    shards = 4 if (big, 4) in by else max(r.shards for r in results if r.series == big)
    target = by[(big, shards)]
    original = by.get((big, 1))
    out = ["Goals, measured in this run:", ""]
    for r in sorted((r for r in results if r.shards == shards), key=lambda r: r.series):
        ratio = r.router_p50 / r.direct_p50
        out.append(
            f"- cold p50 at most 1.25x the raw direct query, {r.series:,} series on "
            f"{shards} shard(s): {ratio:.2f}x ({ms(r.router_p50)} against "
            f"{ms(r.direct_p50)}; {'met' if ratio <= 1.25 else 'not met'})."
        )
    if original is not None and original.original_s:
        speedup = original.original_s / target.router_p50
        out.append(
            f"- at least 100x faster than the original's way at {big:,} series: "
            f"{speedup:.0f}x ({original.original_s:.1f} s against "
            f"{ms(target.router_p50)}; {'met' if speedup >= 100 else 'not met'})."
        )
    growth = max(r.rss_growth_mb for r in results)
    out.append(
        f"- router RSS growth under 50 concurrent 24 h requests below 100 MB: at most "
        f"{growth:.0f} MB ({'met' if growth < 100 else 'not met'})."
    )
    return out


def plot(results: list[Result]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for shards in sorted({r.shards for r in results}):
        rows = sorted((r for r in results if r.shards == shards), key=lambda r: r.series)
        series = [r.series for r in rows]
        left.plot(series, [r.router_p50 * 1000 for r in rows], "o-", label=f"router, {shards}")
        left.plot(
            series, [r.direct_p50 * 1000 for r in rows], "x--", label=f"direct (raw), {shards}"
        )
    left.set(xlabel="series", ylabel="p50 latency (ms)", title="GET /btcusd, 24 h, by shards")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7)
    ones = [r for r in results if r.original_s]
    labels = [f"{r.series:,}" for r in ones]
    width = 0.4
    xs = range(len(ones))
    right.bar([x - width / 2 for x in xs], [r.router_p50 for r in ones], width, label="router")
    right.bar(
        [x + width / 2 for x in xs],
        [r.original_s or 0 for r in ones],
        width,
        label="original (1 InfluxDB, rank on demand)",
    )
    right.set(
        xticks=list(xs),
        xticklabels=labels,
        yscale="log",
        xlabel="series",
        ylabel="seconds",
        title="router vs the original's way, 1 shard",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMG / "query-latency.png", dpi=110)
