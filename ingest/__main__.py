"""``python -m ingest``: collect prices every tick and write them to their shards."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import httpx

from federation.config import load_shard_map
from federation.exceptions import FederationError
from federation.influx import InfluxClient
from federation.influxql import Duration
from federation.logs import setup_logging
from ingest.loop import Ingester, ensure_databases, latest_point_ms, now_ms
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter

log = logging.getLogger("ingest")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ingest", description="Collect crypto prices every tick into the InfluxDB shards."
    )
    parser.add_argument("--config", default="shards.yaml", help="shard map (default: %(default)s)")
    parser.add_argument(
        "--source",
        choices=["simulated"],
        default="simulated",
        help="where prices come from (default: %(default)s)",
    )
    parser.add_argument(
        "--series",
        type=int,
        default=500,
        help="simulated (exchange, pair) series, 1 to 14000 (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        help="seconds between ticks, at least 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--backfill",
        default="-24h",
        help="history to write first, as a duration like -24h; 'none' to skip."
        " Time the shards already hold is not written again (default: %(default)s)",
    )
    parser.add_argument("--once", action="store_true", help="backfill, write one tick, and exit")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    shard_map = load_shard_map(args.config)
    source = SimulatedMarket(
        series=args.series, seed=args.seed, step_ms=round(args.interval * 1000)
    )
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        clients = {
            s.name: InfluxClient(s, http, shard_map.database, timeout=30.0)
            for s in shard_map.shards
        }
        await ensure_databases(clients)
        writer = ShardWriter(shard_map, clients)
        ingester = Ingester(source, writer, interval_s=args.interval)
        log.info(
            "ingesting %d series into %d shards (map %s, replication %d)",
            args.series,
            len(clients),
            shard_map.version,
            shard_map.replication,
        )
        if args.backfill != "none":
            window = Duration.parse(args.backfill)
            end = ingester.next_boundary(now_ms()) - ingester.interval_ms + 1
            start = end - window.seconds * 1000
            latest = await latest_point_ms(clients, window.seconds)
            if latest is not None:
                start = max(start, latest + 60_000)
            start -= start % 60_000
            if start < end:
                await ingester.backfill(source, start, end)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await ingester.run(stop, max_ticks=1 if args.once else None)
        log.info(
            "stopped after %d ticks (%d skipped), %d points written, %d not stored",
            ingester.ticks,
            ingester.skipped_ticks,
            ingester.total.points,
            sum(ingester.total.failed.values()),
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        return asyncio.run(run(args))
    except (FederationError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
