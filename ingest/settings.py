"""The ingest part of the ingester's settings: where prices come from, how often, and how
they are written and spooled; every flag of ``python -m ingest`` but ``--config`` and
``--log-level``. The ingester process (:mod:`federation.tools.ingester`) holds it beside
the alerts settings and the shards' credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Self, get_args

import pandas as pd
from pydantic import BeforeValidator, PlainSerializer, model_validator

from federation.core.durations import Duration
from federation.core.settings import Length, SettingsModel, setting
from ingest.loop import MAX_INTERVAL_S
from ingest.simulated import MAX_SERIES

SourceName = Literal["simulated", "cryptowatch", "ccxt", "replay"]
SOURCES: tuple[str, ...] = get_args(SourceName)
SIMULATED, CRYPTOWATCH, CCXT, REPLAY, WRITES = (
    "simulated source",
    "cryptowatch source",
    "ccxt source",
    "replay source",
    "writes and spool",
)


@dataclass(frozen=True)
class TimeRange:
    """A backfill of fixed times: from ``start_ms`` (on a minute) to ``end_ms``."""

    start_ms: int
    end_ms: int


def parse_time_ms(text: str) -> int:
    """``2023-03-01T12:00Z`` (UTC when no zone is given) in ms since the epoch."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 2023-03-01T12:00Z") from None
    if stamp is pd.NaT:
        raise ValueError(f"{text!r} is not a time like 2023-03-01T12:00Z")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value // 1_000_000)


def _time(value: object) -> object:
    return parse_time_ms(value) if isinstance(value, str) else value


def _backfill(value: object) -> object:
    if not isinstance(value, str):
        return value
    if value == "none":
        return None
    if "/" in value:
        start_text, _, end_text = value.partition("/")
        start = parse_time_ms(start_text)
        return TimeRange(start - start % 60_000, parse_time_ms(end_text))
    try:
        return Duration.parse(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a look-back like -24h, a range START/END like"
            " 2024-01-01/2024-01-02, or none"
        ) from None


def _backfill_text(value: Duration | TimeRange | None) -> str:
    return "none" if value is None else str(value)


def _csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _exchange_urls(value: object) -> object:
    if not isinstance(value, list | tuple):
        return value
    urls = {}
    for text in value:
        name, sep, url = str(text).partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"{text!r} is not EXCHANGE=http(s)://host:port")
        urls[name] = url
    return urls


Backfill = Annotated[
    Duration | TimeRange | None, BeforeValidator(_backfill), PlainSerializer(_backfill_text)
]


class IngestSettings(SettingsModel):
    source: SourceName = setting("simulated", flag="--source", help="where prices come from")
    interval_s: float = setting(
        60.0, flag="--interval", ge=1, le=MAX_INTERVAL_S, help="seconds between ticks"
    )
    once: bool = setting(False, flag="--once", help="backfill, write one tick, and exit")
    ready_file: str | None = setting(
        flag="--ready-file",
        help="a file written once the backfill is written, before the first tick (what"
        " `make run` waits for before it starts the router)",
    )

    series: int = setting(
        500,
        flag="--series",
        ge=1,
        le=MAX_SERIES,
        group=SIMULATED,
        help="simulated (exchange, pair) series",
    )
    seed: int = setting(0, flag="--seed", group=SIMULATED, help="simulation seed")
    backfill: Backfill = setting(
        Duration(24, "h"),
        flag="--backfill",
        group=SIMULATED,
        help="history to write first: a look-back like -24h (time the shards already hold is"
        " not written again), a range START/END like 2024-01-01/2024-01-02, or none",
    )

    url: str | None = setting(
        flag="--url",
        group=CRYPTOWATCH,
        help="base URL of a Cryptowatch-format API, e.g. http://127.0.0.1:8080",
    )
    no_volume: bool = setting(
        False, flag="--no-volume", group=CRYPTOWATCH, help="skip /markets/summaries (prices only)"
    )
    cryptowatch_api_key: str | None = setting(
        env="CRYPTOWATCH_API_KEY", secret=True, help="sent as X-CW-API-Key"
    )

    exchanges: Annotated[tuple[str, ...], BeforeValidator(_csv)] = setting(
        (), flag="--exchanges", group=CCXT, help="ccxt exchange ids, e.g. kraken,bitstamp"
    )
    symbols: Annotated[tuple[str, ...] | None, BeforeValidator(_csv)] = setting(
        flag="--symbols",
        group=CCXT,
        default_text="every market of each exchange",
        example="BTC/USD,ETH/USD",
        help="unified symbols, e.g. BTC/USD,ETH/USD",
    )
    exchange_urls: Annotated[dict[str, str], BeforeValidator(_exchange_urls)] = setting(
        {},
        flag="--exchange-url",
        group=CCXT,
        repeat=True,
        metavar="EXCHANGE=URL",
        example="kraken=http://127.0.0.1:8080",
        help="send one exchange's requests to another host (a proxy); repeatable",
    )

    file: str | None = setting(
        flag="--file", group=REPLAY, help="CSV or Parquet file of time,exchange,pair,price[,volume]"
    )
    speed: float = setting(
        0.0,
        flag="--speed",
        ge=0,
        group=REPLAY,
        help="0: as fast as the shards take it; 1: real time; 60: sixty times faster",
    )
    start_ms: Annotated[int | None, BeforeValidator(_time)] = setting(
        flag="--from",
        group=REPLAY,
        example="2023-03-01T12:00Z",
        default_text="the first row",
        help="replay rows from this time",
    )
    end_ms: Annotated[int | None, BeforeValidator(_time)] = setting(
        flag="--to",
        group=REPLAY,
        example="2023-03-01T13:00Z",
        default_text="after the last row",
        help="replay rows before this time",
    )
    time_unit: Literal["s", "ms", "us", "ns"] | None = setting(
        flag="--time-unit",
        group=REPLAY,
        default_text="read from their magnitude",
        help="unit of numeric times",
    )

    no_rollup: bool = setting(
        False,
        flag="--no-rollup",
        group=WRITES,
        help="write no minute rollup beside the prices (routers then read the newest"
        " minutes from the prices themselves, each router at its own cost to the shards)",
    )
    spool_dir: str | None = setting(
        env="FEDERATION_SPOOL_DIR",
        flag="--spool-dir",
        group=WRITES,
        default_text=".spool beside the shard map",
        help="per-shard queues on disk (each shard map keeps its own by default)",
    )
    no_spool: bool = setting(
        False,
        flag="--no-spool",
        group=WRITES,
        help="no spool: a shard that is down loses its points",
    )
    spool_max_mb: float = setting(
        1024.0,
        flag="--spool-max-mb",
        gt=0,
        group=WRITES,
        help="cap of each shard's queue in MB; past it the oldest batches are dropped",
    )
    spool_max_age: Length = setting(
        Duration(7, "d"),
        flag="--spool-max-age",
        group=WRITES,
        help="batches older than this are dropped: a length like 12h or 7d",
    )
    batch_lines: int = setting(
        5000, flag="--batch-lines", ge=1, group=WRITES, help="lines per write"
    )
    write_timeout_s: float = setting(
        10.0,
        flag="--write-timeout",
        gt=0,
        group=WRITES,
        help="seconds one write to a shard may take",
    )
    drain_wait_s: float = setting(
        30.0,
        flag="--drain-wait",
        ge=0,
        group=WRITES,
        help="at exit, seconds to wait for spooled batches to reach their shards; what is"
        " left stays on disk for the next run",
    )

    @model_validator(mode="after")
    def _source_has_what_it_needs(self) -> Self:
        needs = {
            "cryptowatch": (self.url, "--url", "http://127.0.0.1:8080"),
            "ccxt": (self.exchanges, "--exchanges", "kraken,bitstamp"),
            "replay": (self.file, "--file", "prices.csv"),
        }
        if self.source in needs and not needs[self.source][0]:
            _, flag, example = needs[self.source]
            raise ValueError(
                f"--source {self.source} needs {flag}; fix: pass e.g. {flag} {example}"
            )
        if "backfill" in self.model_fields_set and self.source != "simulated":
            raise ValueError(
                "--backfill writes the simulated market's history; fix: to import recorded"
                " history use --source replay --file FILE"
            )
        return self
