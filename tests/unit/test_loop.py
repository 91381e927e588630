"""The tick loop (tick rule, source time, observers), row validation and the CLI."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from federation.tools.ingester import parse_settings
from ingest.errors import SourceError
from ingest.loop import Ingester
from ingest.resume import last_prices
from ingest.simulated import MAX_SERIES, SimulatedMarket
from ingest.source import Snapshot, validate
from ingest.writer import ShardWriter
from tests.clock import FakeClock
from tests.fakeshard import FakeShard

T0 = 1_700_000_000_000


class Rows:
    """A source answering fixed rows (or raising), recording the ticks it was asked for;
    it takes ``delay_s`` of the clock's time to answer."""

    name = "rows"

    def __init__(
        self, rows: pd.DataFrame | Exception, delay_s: float = 0.0, clock: FakeClock | None = None
    ) -> None:
        self.rows, self.delay_s, self.asked = rows, delay_s, list[int]()
        self.clock = clock or FakeClock()

    async def snapshot(self, tick_ms: int) -> Snapshot:
        self.asked.append(tick_ms)
        await self.clock.sleep(self.delay_s)
        if isinstance(self.rows, Exception):
            raise self.rows
        return Snapshot(self.rows.copy())

    async def aclose(self) -> None:
        return None


def rows(**columns: list[object]) -> pd.DataFrame:
    data: dict[str, list[object]] = {
        "time": [np.nan, np.nan],
        "exchange": ["kraken", "bitstamp"],
        "pair": ["btcusd", "btcusd"],
        "price": [19062.5, 19070.0],
        "volume": [12.5, np.nan],
    }
    data.update(columns)
    return pd.DataFrame(data)


@pytest.fixture
def writer(recording_writer: tuple[ShardWriter, list[str]]) -> tuple[ShardWriter, list[str]]:
    return recording_writer


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("exchange", "Kraken Pro", "bad_id"),
        ("exchange", None, "bad_id"),
        ("pair", "btc/usd", "bad_id"),
        ("pair", "", "bad_id"),
        ("price", "abc", "price_not_number"),
        ("price", None, "price_not_number"),
        ("price", float("inf"), "price_not_positive"),
        ("price", -1.0, "price_not_positive"),
        ("time", -5, "bad_time"),
        ("time", T0 * 10, "bad_time"),
    ],
    ids=[
        "exchange-space",
        "exchange-none",
        "pair-slash",
        "pair-empty",
        "price-text",
        "price-none",
        "price-inf",
        "price-negative",
        "time-negative",
        "time-future",
    ],
)
def test_validate_bad_row_counted_and_left_out(column: str, value: object, reason: str) -> None:
    data = rows()
    data[column] = data[column].astype(object)
    data.loc[0, column] = value
    problems: Counter[str] = Counter()
    out = validate(data, T0, problems)
    assert out["exchange"].tolist() == ["bitstamp"]
    assert problems == {reason: 1}


def test_validate_dotted_ids_kept_lowercased() -> None:
    problems: Counter[str] = Counter()
    out = validate(rows(exchange=["Uniswap-V3", "kraken"], pair=["IMX.2WETH", "a.b"]), T0, problems)
    assert (out["exchange"].tolist(), out["pair"].tolist()) == (
        ["uniswap-v3", "kraken"],
        ["imx.2weth", "a.b"],
    )
    assert not problems


def test_validate_fills_missing_time_keeps_source_time() -> None:
    out = validate(rows(time=[T0 - 5, np.nan]), T0, Counter())
    assert out["time"].tolist() == [T0 - 5, T0]
    assert out["time"].dtype == np.int64


def test_validate_lowercases_ids() -> None:
    out = validate(rows(exchange=["Kraken", "BITSTAMP"], pair=["BTCUSD", "btcusd"]), T0, Counter())
    assert out["exchange"].tolist() == ["kraken", "bitstamp"]
    assert set(out["pair"]) == {"btcusd"}


def test_validate_negative_volume_drops_volume_only() -> None:
    problems: Counter[str] = Counter()
    out = validate(rows(volume=[-1.0, 3.0]), T0, problems)
    assert out["price"].tolist() == [19062.5, 19070.0]
    assert np.isnan(out["volume"][0])
    assert problems == {"volume_invalid": 1}


def test_validate_duplicate_keeps_last() -> None:
    problems: Counter[str] = Counter()
    data = rows(exchange=["kraken", "kraken"], price=[1.0, 2.0])
    assert validate(data, T0, problems)["price"].tolist() == [2.0]
    assert problems == {"duplicate": 1}


def test_validate_same_series_at_two_times_both_kept() -> None:
    problems: Counter[str] = Counter()
    data = rows(exchange=["kraken", "kraken"], time=[T0 - 1000, T0])
    assert len(validate(data, T0, problems)) == 2
    assert not problems


def test_validate_bad_row_never_shadows_good_duplicate() -> None:
    problems: Counter[str] = Counter()
    data = rows(exchange=["kraken", "kraken"], price=[1.0, "x"])
    assert validate(data, T0, problems)["price"].tolist() == [1.0]
    assert problems == {"price_not_number": 1}


async def test_tick_writes_source_time_where_given(writer: tuple[ShardWriter, list[str]]) -> None:
    shard_writer, received = writer
    ingester = Ingester(Rows(rows(time=[T0 - 1234, np.nan])), shard_writer)
    await ingester.tick(T0)
    assert [line.rsplit(" ", 1)[1] for line in received] == [str(T0 - 1234), str(T0)]


async def test_tick_source_error_counted_nothing_written(
    writer: tuple[ShardWriter, list[str]],
) -> None:
    shard_writer, received = writer
    ingester = Ingester(Rows(SourceError("rows", "http_500", "down")), shard_writer)
    report = await ingester.tick(T0)
    assert report.points == 0
    assert received == []
    assert ingester.source_errors == {"http_500": 1}


async def test_tick_observers_get_validated_frame_after_write(
    writer: tuple[ShardWriter, list[str]],
) -> None:
    shard_writer, received = writer
    seen: list[tuple[int, int]] = []

    async def observer(frame: pd.DataFrame) -> None:
        seen.append((len(frame), len(received)))

    ingester = Ingester(Rows(rows(price=[1.0, "x"])), shard_writer, observers=[observer])
    await ingester.tick(T0)
    assert seen == [(1, 1)]


async def test_tick_failing_observer_logged_others_still_called(
    writer: tuple[ShardWriter, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    called: list[str] = []

    async def broken(frame: pd.DataFrame) -> None:
        raise RuntimeError("detector bug")

    async def fine(frame: pd.DataFrame) -> None:
        called.append("fine")

    ingester = Ingester(Rows(rows()), writer[0], observers=[broken, fine])
    report = await ingester.tick(T0)
    assert report.points == 2
    assert called == ["fine"]
    assert "detector bug" in caplog.text


async def test_tick_accepts_sync_simulated_market(writer: tuple[ShardWriter, list[str]]) -> None:
    ingester = Ingester(SimulatedMarket(series=30), writer[0])
    assert (await ingester.tick(T0)).points == 30


@pytest.mark.parametrize("interval_s", [1, 60], ids=["1s", "60s"])
async def test_run_ticks_fall_on_interval_boundaries(
    writer: tuple[ShardWriter, list[str]], interval_s: int
) -> None:
    clock = FakeClock(T0 + 123)
    source = Rows(rows(), clock=clock)
    ingester = Ingester(source, writer[0], interval_s=interval_s, clock=clock)
    await ingester.run(asyncio.Event(), max_ticks=2)
    assert all(t % (interval_s * 1000) == 0 for t in source.asked)
    assert source.asked[1] - source.asked[0] == interval_s * 1000
    assert ingester.skipped_ticks == 0


async def test_run_writes_rows_at_the_tick_boundary(
    writer: tuple[ShardWriter, list[str]],
) -> None:
    clock = FakeClock(T0 + 123)
    ingester = Ingester(Rows(rows(), clock=clock), writer[0], interval_s=60, clock=clock)
    await ingester.run(asyncio.Event(), max_ticks=1)
    assert {line.rsplit(" ", 1)[1] for line in writer[1]} == {str(ingester.next_boundary(T0))}


async def test_run_slow_tick_skips_the_boundary_it_ran_into(
    writer: tuple[ShardWriter, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0 + 123)
    source = Rows(rows(), clock=clock)

    async def slow(frame: pd.DataFrame) -> None:
        if len(source.asked) == 1:
            await clock.sleep(1.1)

    ingester = Ingester(source, writer[0], interval_s=1, observers=[slow], clock=clock)
    await ingester.run(asyncio.Event(), max_ticks=2)
    assert source.asked[1] - source.asked[0] == 2000
    assert ingester.skipped_ticks == 1
    assert "tick at 2023-11-14T22:13:21.000Z ran past 1 boundaries: skipped them" in caplog.text


async def test_run_hung_source_costs_one_tick(writer: tuple[ShardWriter, list[str]]) -> None:
    clock = FakeClock(T0 + 123)
    ingester = Ingester(Rows(rows(), delay_s=5, clock=clock), writer[0], interval_s=1, clock=clock)
    await ingester.run(asyncio.Event(), max_ticks=1)
    assert ingester.source_errors == {"timeout": 1}
    assert clock.now_ms() == T0 + 2000  # given up one interval after it began


async def test_run_stops_when_asked(writer: tuple[ShardWriter, list[str]]) -> None:
    stop = asyncio.Event()
    stop.set()
    ingester = Ingester(Rows(rows()), writer[0], interval_s=3600, clock=FakeClock())
    await ingester.run(stop)
    assert ingester.ticks == 0


async def test_run_stop_during_the_wait_ends_it_before_the_next_tick(
    writer: tuple[ShardWriter, list[str]],
) -> None:
    clock, stop = FakeClock(T0), asyncio.Event()
    ingester = Ingester(Rows(rows(), clock=clock), writer[0], interval_s=3600, clock=clock)
    running = asyncio.create_task(ingester.run(stop))
    await clock.advance(60)
    stop.set()
    await running
    assert (ingester.ticks, clock.now_ms()) == (0, T0 + 60_000)


async def test_run_max_ticks_counts_the_ticks_already_run(
    writer: tuple[ShardWriter, list[str]],
) -> None:
    clock = FakeClock(T0)
    ingester = Ingester(Rows(rows(), clock=clock), writer[0], interval_s=1, clock=clock)
    await ingester.run(asyncio.Event(), max_ticks=2)
    await ingester.run(asyncio.Event(), max_ticks=5)
    assert ingester.ticks == 5


@pytest.mark.parametrize("interval", [0.5, 86_401], ids=["too-short", "too-long"])
def test_interval_out_of_range_raises(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be between"):
        Ingester(Rows(rows()), None, interval_s=interval)  # type: ignore[arg-type]


def test_cli_defaults_are_what_make_run_expects() -> None:
    settings = parse_settings(["--config", "x.yaml", "--log-level", "INFO", "--series", "7"], {})
    ingest = settings.ingest
    assert (ingest.source, ingest.series, ingest.interval_s) == ("simulated", 7, 60.0)
    assert (str(ingest.backfill), ingest.spool_max_age.seconds) == ("-24h", 7 * 86400)
    assert ingest.spool_dir is None  # .spool beside the shard map
    assert not ingest.no_spool


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "cryptowatch"], "needs --url"),
        (["--source", "ccxt"], "needs --exchanges"),
        (["--source", "replay"], "needs --file"),
        (["--interval", "0.5"], "--interval: '0.5' is not a number from 1 to"),
        (["--source", "ccxt", "--exchanges", "kraken", "--backfill=-1h"], "--source replay"),
        (["--series", "0"], "--series: '0'"),
        (["--series", str(MAX_SERIES + 1)], f"to {MAX_SERIES}"),
        (["--spool-max-age", "forever"], "--spool-max-age: 'forever' is not a length like"),
        (["--spool-max-age", "1.5h"], "--spool-max-age: '1.5h' is not a length like"),
        (["--backfill", "24h"], "--backfill: '24h' is not a look-back like -24h"),
        (["--exchange-url", "kraken"], "EXCHANGE=http"),
    ],
    ids=[
        "url",
        "exchanges",
        "file",
        "interval",
        "backfill",
        "series",
        "series-above-market",
        "age",
        "fractional-age",
        "backfill-length",
        "exchange-url",
    ],
)
def test_cli_bad_option_exits_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_settings(argv, {})
    assert message in capsys.readouterr().err


def test_cli_flag_wins_over_the_environment() -> None:
    env = {"FEDERATION_SPOOL_DIR": "/var/spool/env", "FEDERATION_CONFIG": "env.yaml"}
    settings = parse_settings(["--spool-dir", "/var/spool/flag"], env)
    assert (settings.config_path, settings.ingest.spool_dir) == ("env.yaml", "/var/spool/flag")


def test_cli_environment_fills_the_sections() -> None:
    env = {"ALERTS_MIN_POINTS": "5", "INFLUX_TOKEN": "t", "CRYPTOWATCH_API_KEY": "k"}
    settings = parse_settings([], env)
    assert (settings.alerts.min_points, settings.ingest.cryptowatch_api_key) == (5, "k")
    assert settings.credentials.headers("shard-a") == {"Authorization": "Token t"}


def test_cli_bad_variable_exits_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings([], {"ALERTS_GIVE_UP_AFTER": "never"})
    assert "ALERTS_GIVE_UP_AFTER: 'never'" in capsys.readouterr().err


def test_cli_help_lists_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"], {})
    out = capsys.readouterr().out
    for name in ("simulated", "cryptowatch", "ccxt", "replay", "--spool-dir"):
        assert name in out


async def test_last_prices_are_each_series_newest_on_any_shard_that_answers() -> None:
    shards = {name: FakeShard(name, now_ms=T0) for name in ("a", "b", "c")}
    for name, age_ms in (("a", 60_000), ("b", 1_000), ("c", 0)):
        shards[name].seed(rows(time=[T0 - 2 * age_ms, T0 - age_ms]))
    shards["c"].down = True
    last = await last_prices(shards, 3600)
    assert dict(zip(last.exchange, last.time, strict=True)) == {
        "kraken": T0 - 2_000,
        "bitstamp": T0 - 1_000,
    }
