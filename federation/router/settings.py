"""The router process's settings (``python -m federation serve``), built once at start
from the environment and the command line and passed to :func:`create_app`: the
``FEDERATION_*`` variables, where it listens, the API keys, the alerts API's settings
and the shards' credentials."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from alerts.settings import AlertSettings, database_beside_map
from federation.core.apikeys import ApiKeys
from federation.core.credentials import Credentials
from federation.core.durations import Duration
from federation.core.settings import LookBack, ProcessSettings, setting


class RouterSettings(ProcessSettings):
    host: str = setting("127.0.0.1", flag="--host", help="address to listen on")
    port: int = setting(8001, flag="--port", ge=1, le=65535, help="port to listen on")
    shard_timeout: float = setting(
        10.0,
        env="FEDERATION_SHARD_TIMEOUT",
        ge=0.01,
        le=600,
        help="seconds one shard may take for one query (or one chunk of a streamed answer);"
        " then it is reported missing",
    )
    deadline_s: float = setting(
        30.0,
        env="FEDERATION_DEADLINE",
        ge=0.01,
        le=3600,
        help="seconds a whole price answer may take; shards still streaming then are cut"
        " and reported missing",
    )
    rank_refresh_s: float = setting(
        60.0,
        env="FEDERATION_RANK_REFRESH",
        ge=0,
        le=86400,
        help="seconds between rebuilds of the rank table; 0 computes the rank per request",
    )
    reload_check_s: float = setting(
        5.0,
        env="FEDERATION_RELOAD_CHECK",
        ge=0.1,
        le=3600,
        help="seconds between checks of the shard map for changes (SIGHUP checks at once)",
    )
    spool_dir: str | None = setting(
        env="FEDERATION_SPOOL_DIR",
        default_text=".spool beside the shard map",
        help="where an ingester on this host spools; /shards shows each shard's queue",
    )
    max_duration: LookBack = setting(
        Duration(30, "d"),
        env="FEDERATION_MAX_DURATION",
        help="the longest window a query may ask for",
    )
    max_body: int = setting(
        16_384,
        env="FEDERATION_MAX_BODY",
        ge=1024,
        le=100 * 1024 * 1024,
        help="bytes a request body may hold; a larger one is refused with 413 from its"
        " Content-Length before it is read, or as soon as a chunked one passes it",
    )
    write_max_body: int = setting(
        25_000_000,
        env="FEDERATION_WRITE_MAX_BODY",
        ge=1024,
        le=1024 * 1024 * 1024,
        help="bytes a /write body may hold (InfluxDB's own limit by default), and bytes a"
        " gzip body may inflate to; past it 413, as for FEDERATION_MAX_BODY",
    )
    write_spool_dir: str | None = setting(
        env="FEDERATION_WRITE_SPOOL_DIR",
        default_text=".write-spool beside the shard map",
        help="where /write spools the lines of a shard that is down (a queue per shard,"
        " replayed in order when it is back); not the ingester's spool",
    )
    body_timeout_s: float = setting(
        10.0,
        env="FEDERATION_BODY_TIMEOUT",
        ge=0.1,
        le=600,
        help="seconds a request body may take to arrive in full; then 408",
    )
    strict_max_rows: int = setting(
        100_000,
        env="FEDERATION_STRICT_MAX_ROWS",
        ge=1,
        le=100_000_000,
        help="prices a strict=true answer may hold (it is read whole before it is sent);"
        " a larger one is refused with 422",
    )
    rank_windows: int = setting(
        64,
        env="FEDERATION_RANK_WINDOWS",
        ge=1,
        le=100_000,
        help="rank tables of on-demand windows kept until the next refresh; past it the"
        " least recently used is dropped",
    )
    rank_builds: int = setting(
        4,
        env="FEDERATION_RANK_BUILDS",
        ge=1,
        le=1000,
        help="rank tables of on-demand windows built at once; past it a request for another"
        " window is refused with 503 and Retry-After",
    )
    rank_recount_hours: int = setting(
        24,
        env="FEDERATION_RANK_RECOUNT",
        ge=1,
        le=8760,
        help="hours between the rank table's counts of every held minute while the shards'"
        " write counters show no late points (a count runs at once when they do)",
    )
    send_timeout_s: float = setting(
        10.0,
        env="FEDERATION_SEND_TIMEOUT",
        ge=0.1,
        le=600,
        help="seconds one send of a response may wait on a client that does not read; then"
        " the answer is abandoned: its shard streams are closed and its connection too",
    )
    max_streams: int = setting(
        30,
        env="FEDERATION_MAX_STREAMS",
        ge=1,
        le=10_000,
        help="price answers (GET /{pair}) streaming at once, each holding one connection"
        " per shard; past it a new one takes the place of the answer whose client has not"
        " read for longest (1 s or more), else it is refused with 503 and Retry-After",
    )
    hot_cache_bytes: int = setting(
        256 * 1024 * 1024,
        env="FEDERATION_HOT_CACHE_BYTES",
        ge=0,
        le=1024**4,
        help="bytes the hot cache may hold (the last 24 h of the pairs asked for, ready to"
        " send); past it the least recently asked pair is dropped; 0 turns the cache off"
        " (so does FEDERATION_RANK_REFRESH=0: the cache learns of late points from the rank"
        " table's count check)",
    )
    influx_max_rows: int = setting(
        1_000_000,
        env="FEDERATION_INFLUX_MAX_ROWS",
        ge=1,
        le=100_000_000,
        help="raw points a /query statement may read from the shards (replicas included):"
        " a raw SELECT, and what no partial can combine (MEDIAN, PERCENTILE, MODE,"
        " DISTINCT); and GROUP BY time windows of one series; a statement past either"
        " answers an error naming this limit",
    )
    api: ApiKeys = Field(default_factory=ApiKeys)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    credentials: Credentials = Field(default_factory=Credentials)

    @field_validator("rank_refresh_s")
    @classmethod
    def _off_or_a_second(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError(f"{value:g} is neither 0 (rank per request) nor at least 1 second")
        return value

    @model_validator(mode="before")
    @classmethod
    def _alerts_beside_map(cls, data: Any) -> Any:
        return database_beside_map(data)
