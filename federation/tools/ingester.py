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
Flags and environment are read once, at start (docs/operations.md lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import httpx
import httpx2

from alerts.service import AlertService
from federation.core.clock import now_ms
from federation.core.errors import ConfigError, FederationError
from federation.core.influx import InfluxClient, clients_for, ensure_databases, http_for_shards
from federation.core.logs import setup_logging
from federation.core.mapwatch import MapWatcher
from federation.core.settings import add_flags, flags_given
from federation.core.shardmap import ShardMap, load_shard_map
from federation.core.timefmt import iso_time
from federation.tools.settings import IngesterSettings
from ingest.loop import Ingester
from ingest.resume import backfill_resumed
from ingest.rollup import MinuteRollup
from ingest.settings import IngestSettings, TimeRange
from ingest.simulated import SimulatedMarket
from ingest.source import SimulatedSource, Source
from ingest.spool import Spool
from ingest.writer import ShardWriter

log = logging.getLogger("ingest")


def parse_settings(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None
) -> IngesterSettings:
    """The process's settings from its command line and ``env`` (the process's own
    environment when None); a problem exits 2 with the usage and what to fix."""
    parser = argparse.ArgumentParser(
        prog="ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_flags(parser, IngesterSettings)
    given = flags_given(parser.parse_args(argv))
    try:
        return IngesterSettings.load(os.environ if env is None else env, given)
    except ConfigError as exc:
        parser.error(str(exc))


def _backfill_range(settings: IngestSettings, ingester: Ingester) -> tuple[int, int, bool]:
    """(start, end, relative): a relative window starts after what the shards hold."""
    backfill = settings.backfill
    if isinstance(backfill, TimeRange):
        return backfill.start_ms, backfill.end_ms, False
    assert backfill is not None
    end = ingester.next_boundary(now_ms()) - ingester.interval_ms + 1
    return end - backfill.seconds * 1000, end, True


def make_source(settings: IngestSettings, http: httpx.AsyncClient) -> Source:
    if settings.source == "cryptowatch":
        from ingest.cryptowatch import CryptowatchSource

        assert settings.url is not None  # the settings require it for this source
        # A request gives up (naming its endpoint) before the tick's own bound does;
        # volumes are waited for half an interval at most, prices never wait for them.
        return CryptowatchSource(
            settings.url,
            http,
            timeout_s=min(10.0, 0.9 * settings.interval_s),
            api_key=settings.cryptowatch_api_key,
            volume=not settings.no_volume,
            volume_wait_s=0.5 * settings.interval_s,
        )
    if settings.source == "ccxt":
        from ingest.live import CcxtSource

        return CcxtSource(
            settings.exchanges,
            symbols=settings.symbols,
            api_urls=settings.exchange_urls,
            deadline_s=max(1.0, 0.9 * settings.interval_s),
        )
    market = SimulatedMarket(
        series=settings.series, seed=settings.seed, step_ms=round(settings.interval_s * 1000)
    )
    return SimulatedSource(market)


async def run(settings: IngesterSettings) -> int:
    ingest = settings.ingest
    shard_map: ShardMap = load_shard_map(settings.config_path)
    async with (
        httpx.AsyncClient() as http,
        http_for_shards(httpx2.Limits(max_connections=64)) as shard_http,
    ):
        clients = clients_for(
            shard_map, shard_http, credentials=settings.credentials, timeout=ingest.write_timeout_s
        )
        spool = None
        if not ingest.no_spool:
            spool = Spool(
                ingest.spool_dir or Path(settings.config_path).parent / ".spool",
                max_bytes=int(ingest.spool_max_mb * 1024 * 1024),
                max_age_s=ingest.spool_max_age.seconds,
            )
        writer = ShardWriter(shard_map, clients, spool=spool, batch_lines=ingest.batch_lines)
        source = None if ingest.source == "replay" else make_source(ingest, http)

        async def use_map(new: ShardMap) -> None:
            """A changed shards.yaml: new shards get the database, then the writer switches."""
            fresh = {}
            for shard in new.shards:
                old = writer.clients.get(shard.name)
                same = old is not None and old.shard == shard and old.database == new.database
                fresh[shard.name] = (
                    old
                    if same and old is not None
                    else InfluxClient(
                        shard,
                        shard_http,
                        new.database,
                        timeout=ingest.write_timeout_s,
                        headers=settings.credentials.headers(shard.name),
                    )
                )
            await ensure_databases(fresh, 15.0, required=False)
            writer.set_map(new, fresh)

        watching = asyncio.Event()
        watcher = asyncio.create_task(
            MapWatcher(settings.config_path, shard_map, use_map).run(watching)
        )
        try:
            # The database exists on every shard before anything is written or replayed.
            await ensure_databases(clients, 15.0 if spool else 60.0, required=spool is None)
            if source is None:
                await replay(ingest, writer)
            else:
                await tick(settings, source, writer, shard_map, len(clients))
        finally:
            watching.set()
            await watcher
            if source is not None:
                await source.aclose()
            if spool is not None and any(writer.pending(s.name) for s in shard_map.shards):
                log.info(
                    "waiting up to %.0fs for spooled batches to reach their shards",
                    ingest.drain_wait_s,
                )
                await writer.wait_drained(ingest.drain_wait_s)
            await writer.close()
            if spool is not None and (summary := spool.summary()):
                log.warning(
                    "%s; they stay in %s and are replayed at the next start",
                    summary,
                    spool.root,
                )
    return 0


async def replay(settings: IngestSettings, writer: ShardWriter) -> None:
    from ingest.replay import ReplaySource

    assert settings.file is not None  # the settings require it for this source
    source = ReplaySource(
        settings.file,
        speed=settings.speed,
        start_ms=settings.start_ms,
        end_ms=settings.end_ms,
        time_unit=settings.time_unit,
    )
    ingester = Ingester(None, writer)
    total = await asyncio.to_thread(source.count_rows)
    log.info("replaying %s: %d rows, speed %s", settings.file, total, settings.speed or "full")
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
    settings: IngesterSettings,
    source: Source,
    writer: ShardWriter,
    shard_map: ShardMap,
    shards: int,
) -> None:
    ingest = settings.ingest
    alerts = AlertService(settings.alerts, writer.clients)
    rollup = None if ingest.no_rollup else MinuteRollup(round(ingest.interval_s * 1000))
    ingester = Ingester(
        source, writer, interval_s=ingest.interval_s, observers=[alerts.observe], rollup=rollup
    )
    log.info(
        "ingesting from %s into %d shards (map %s, replication %d), a tick every %gs",
        source.name if ingest.source != "simulated" else f"{ingest.series} simulated series",
        shards,
        shard_map.version,
        shard_map.replication,
        ingest.interval_s,
    )
    if isinstance(source, SimulatedSource) and ingest.backfill is not None:
        start, end, relative = _backfill_range(ingest, ingester)
        if relative:  # from what the shards hold; prices go on from the stored ones
            await backfill_resumed(ingester, source.market, writer.clients, start, end)
        elif start < end:
            await ingester.backfill(source, start, end)
    await alerts.start()  # after the backfill, so the rebuilt windows include it
    if ingest.ready_file:  # what `make run` waits for before it starts the router
        await asyncio.to_thread(
            Path(ingest.ready_file).write_text, f"backfill written at {iso_time(now_ms())}\n"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    delivery = asyncio.create_task(alerts.run(stop))
    try:
        await ingester.run(stop, max_ticks=1 if ingest.once else None)
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


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    settings = parse_settings(argv, env)
    setup_logging(settings.log_level)
    try:
        return asyncio.run(run(settings))
    except (FederationError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
