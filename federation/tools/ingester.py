"""The ingester process (``python -m ingest``): collect prices every tick, write them to
their shards, and detect and deliver alerts on what was written.

sources (--source):
  simulated    the offline default: a simulated market of --series series, with a
               --backfill of its history so the first query has something to rank
  cryptowatch  the Cryptowatch REST format at --url (/markets/prices, /markets/summaries)
  ccxt         live tickers of --exchanges through ccxt (pip install '.[live]')
  replay       a CSV or Parquet --file of time,exchange,pair,price[,volume], written at its
               recorded times, as fast as possible (--speed 0) or paced (--speed 1 = real time)

A shard that cannot take a batch gets it later from the spool (--spool-dir, one queue per
shard on disk, replayed in order once the shard answers); see docs/ingest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
from pathlib import Path

import httpx
import pandas as pd

from alerts.service import AlertService
from alerts.settings import AlertSettings
from federation.core.clock import now_ms
from federation.core.durations import Duration
from federation.core.errors import FederationError
from federation.core.influx import InfluxClient, clients_for, ensure_databases
from federation.core.logs import setup_logging
from federation.core.mapwatch import MapWatcher
from federation.core.shardmap import ShardMap, load_shard_map
from ingest.loop import MAX_INTERVAL_S, Ingester, latest_point_ms
from ingest.simulated import MAX_SERIES, SimulatedMarket
from ingest.source import SimulatedSource, Source
from ingest.spool import Spool
from ingest.writer import ShardWriter

log = logging.getLogger("ingest")

SOURCES = ("simulated", "cryptowatch", "ccxt", "replay")
_AGE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age_seconds(text: str) -> float:
    match = _AGE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 90m, 12h or 7d")
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 1 <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds between 1 and {MAX_INTERVAL_S:.0f}"
        )
    return value


def _time_ms(text: str) -> int:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2023-03-01T12:00Z") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value // 1_000_000)


def _exchange_url(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not EXCHANGE=http(s)://host:port")
    return name, url


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="shards.yaml", help="shard map (default: %(default)s)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="simulated",
        help="where prices come from (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=_interval,
        default=60.0,
        help=f"seconds between ticks, 1 to {MAX_INTERVAL_S:.0f} (default: %(default)s)",
    )
    parser.add_argument("--once", action="store_true", help="backfill, write one tick, and exit")
    parser.add_argument("--log-level", default="INFO")

    sim = parser.add_argument_group("simulated source")
    sim.add_argument(
        "--series",
        type=int,
        default=500,
        help=f"simulated (exchange, pair) series, 1 to {MAX_SERIES} (default: %(default)s)",
    )
    sim.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    sim.add_argument(
        "--backfill",
        default=None,
        help="history to write first: a duration like -24h (time the shards already hold is"
        " not written again), a range START/END like 2024-01-01/2024-01-02, or 'none'"
        " (default: -24h)",
    )

    cw = parser.add_argument_group("cryptowatch source")
    cw.add_argument(
        "--url", help="base URL of a Cryptowatch-format API, e.g. http://127.0.0.1:8080"
    )
    cw.add_argument(
        "--no-volume", action="store_true", help="skip /markets/summaries (prices only)"
    )

    live = parser.add_argument_group("ccxt source")
    live.add_argument(
        "--exchanges", type=_csv, default=[], help="ccxt exchange ids, e.g. kraken,bitstamp"
    )
    live.add_argument(
        "--symbols",
        type=_csv,
        default=None,
        help="unified symbols, e.g. BTC/USD,ETH/USD (default: every market of each exchange)",
    )
    live.add_argument(
        "--exchange-url",
        type=_exchange_url,
        action="append",
        default=[],
        metavar="EXCHANGE=URL",
        help="send one exchange's requests to another host (a proxy); repeatable",
    )

    rp = parser.add_argument_group("replay source")
    rp.add_argument("--file", help="CSV or Parquet file of time,exchange,pair,price[,volume]")
    rp.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="0: as fast as the shards take it; 1: real time; 60: sixty times faster"
        " (default: %(default)s)",
    )
    rp.add_argument("--from", dest="start", type=_time_ms, help="replay rows from this time")
    rp.add_argument("--to", dest="end", type=_time_ms, help="replay rows before this time")
    rp.add_argument(
        "--time-unit",
        choices=["s", "ms", "us", "ns"],
        help="unit of numeric times (default: read from their magnitude)",
    )

    wr = parser.add_argument_group("writes and spool")
    wr.add_argument(
        "--spool-dir",
        help="per-shard queues on disk (default: .spool beside the --config file, so each"
        " shard map keeps its own)",
    )
    wr.add_argument(
        "--no-spool", action="store_true", help="no spool: a shard that is down loses its points"
    )
    wr.add_argument(
        "--spool-max-mb",
        type=float,
        default=1024.0,
        help="cap of each shard's queue; past it the oldest batches are dropped (default: 1024)",
    )
    wr.add_argument(
        "--spool-max-age",
        type=_age_seconds,
        default=7 * 86400.0,
        help="batches older than this are dropped, e.g. 12h (default: 7d)",
    )
    wr.add_argument(
        "--batch-lines", type=int, default=5000, help="lines per write (default: %(default)s)"
    )
    wr.add_argument(
        "--write-timeout",
        type=float,
        default=10.0,
        help="seconds one write to a shard may take (default: %(default)s)",
    )
    wr.add_argument(
        "--drain-wait",
        type=float,
        default=30.0,
        help="at exit, seconds to wait for spooled batches to reach their shards; what is"
        " left stays on disk for the next run (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    _check(parser, args)
    return args


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.series <= MAX_SERIES:
        parser.error(f"--series: {args.series} is not between 1 and {MAX_SERIES}")
    if args.batch_lines < 1 or args.write_timeout <= 0 or args.spool_max_mb <= 0:
        parser.error("--batch-lines, --write-timeout and --spool-max-mb must be positive")
    if args.backfill is not None and args.source != "simulated":
        parser.error(
            "--backfill writes the simulated market's history; to import recorded history"
            " use --source replay --file FILE"
        )
    needs = {"cryptowatch": ("url", "--url"), "ccxt": ("exchanges", "--exchanges")}
    needs["replay"] = ("file", "--file")
    if args.source in needs:
        attr, flag = needs[args.source]
        if not getattr(args, attr):
            parser.error(f"--source {args.source} needs {flag}")
    if args.source == "replay" and args.speed < 0:
        parser.error("--speed: must be 0 (as fast as possible) or positive")


def _backfill_range(text: str, ingester: Ingester) -> tuple[int, int, bool]:
    """(start, end, relative): a relative window starts after what the shards hold."""
    if "/" in text:
        start_text, _, end_text = text.partition("/")
        try:
            start, end = _time_ms(start_text), _time_ms(end_text)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--backfill: {exc}") from None
        return start - start % 60_000, end, False
    window = Duration.parse(text)
    end = ingester.next_boundary(now_ms()) - ingester.interval_ms + 1
    return end - window.seconds * 1000, end, True


def make_source(args: argparse.Namespace, http: httpx.AsyncClient) -> Source:
    if args.source == "cryptowatch":
        from ingest.cryptowatch import CryptowatchSource

        return CryptowatchSource(args.url, http, volume=not args.no_volume)
    if args.source == "ccxt":
        from ingest.live import CcxtSource

        return CcxtSource(
            args.exchanges,
            symbols=args.symbols,
            api_urls=dict(args.exchange_url),
            deadline_s=max(1.0, 0.9 * args.interval),
        )
    market = SimulatedMarket(
        series=args.series, seed=args.seed, step_ms=round(args.interval * 1000)
    )
    return SimulatedSource(market)


async def run(args: argparse.Namespace) -> int:
    shard_map: ShardMap = load_shard_map(args.config)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        clients = clients_for(shard_map, http, timeout=args.write_timeout)
        spool = None
        if not args.no_spool:
            spool = Spool(
                args.spool_dir or Path(args.config).parent / ".spool",
                max_bytes=int(args.spool_max_mb * 1024 * 1024),
                max_age_s=args.spool_max_age,
            )
        writer = ShardWriter(shard_map, clients, spool=spool, batch_lines=args.batch_lines)
        source = None if args.source == "replay" else make_source(args, http)

        async def use_map(new: ShardMap) -> None:
            """A changed shards.yaml: new shards get the database, then the writer switches."""
            fresh = {}
            for shard in new.shards:
                old = writer.clients.get(shard.name)
                same = old is not None and old.shard == shard and old.database == new.database
                fresh[shard.name] = (
                    old
                    if same and old is not None
                    else InfluxClient(shard, http, new.database, timeout=args.write_timeout)
                )
            await ensure_databases(fresh, 15.0, required=False)
            writer.set_map(new, fresh)

        watching = asyncio.Event()
        watcher = asyncio.create_task(MapWatcher(args.config, shard_map, use_map).run(watching))
        try:
            # The database exists on every shard before anything is written or replayed.
            await ensure_databases(clients, 15.0 if spool else 60.0, required=spool is None)
            if source is None:
                await replay(args, writer)
            else:
                await tick(args, source, writer, shard_map, len(clients))
        finally:
            watching.set()
            await watcher
            if source is not None:
                await source.aclose()
            if spool is not None and any(writer.pending(s.name) for s in shard_map.shards):
                log.info(
                    "waiting up to %.0fs for spooled batches to reach their shards", args.drain_wait
                )
                await writer.wait_drained(args.drain_wait)
            await writer.close()
            if spool is not None and (summary := spool.summary()):
                log.warning(
                    "%s; they stay in %s and are replayed at the next start",
                    summary,
                    spool.root,
                )
    return 0


async def replay(args: argparse.Namespace, writer: ShardWriter) -> None:
    from ingest.replay import ReplaySource

    source = ReplaySource(
        args.file, speed=args.speed, start_ms=args.start, end_ms=args.end, time_unit=args.time_unit
    )
    ingester = Ingester(None, writer)
    total = await asyncio.to_thread(source.count_rows)
    log.info("replaying %s: %d rows, speed %s", args.file, total, args.speed or "full")
    report = await ingester.replay(source.frames(), total)
    log.info(
        "replay done: %d points written, %d spooled, %d not stored, %d rows left out (%s)",
        report.points,
        sum(report.spooled.values()),
        sum(report.failed.values()),
        ingester.problems.total(),
        ", ".join(f"{k}: {v}" for k, v in sorted(ingester.problems.items())) or "none",
    )


async def tick(
    args: argparse.Namespace, source: Source, writer: ShardWriter, shard_map: ShardMap, shards: int
) -> None:
    alerts = AlertService(AlertSettings.from_env(config_path=args.config), writer.clients)
    ingester = Ingester(source, writer, interval_s=args.interval, observers=[alerts.observe])
    log.info(
        "ingesting from %s into %d shards (map %s, replication %d), a tick every %gs",
        source.name if args.source != "simulated" else f"{args.series} simulated series",
        shards,
        shard_map.version,
        shard_map.replication,
        args.interval,
    )
    if isinstance(source, SimulatedSource):
        text = "-24h" if args.backfill is None else args.backfill
        if text != "none":
            start, end, relative = _backfill_range(text, ingester)
            if relative:
                latest = await latest_point_ms(writer.clients, (end - start) // 1000)
                if latest is not None:
                    start = max(start, latest + 60_000)
                start -= start % 60_000
            if start < end:
                await ingester.backfill(source, start, end)
    await alerts.start()  # after the backfill, so the rebuilt windows include it
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    delivery = asyncio.create_task(alerts.run(stop))
    try:
        await ingester.run(stop, max_ticks=1 if args.once else None)
    finally:
        stop.set()
        await delivery
        await alerts.close()
    log.info(
        "stopped after %d ticks (%d skipped, %d without data), %d points written,"
        " %d spooled, %d not stored, %d rows left out",
        ingester.ticks,
        ingester.skipped_ticks,
        ingester.source_errors.total(),
        ingester.total.points,
        sum(ingester.total.spooled.values()),
        sum(ingester.total.failed.values()),
        ingester.problems.total(),
    )


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
