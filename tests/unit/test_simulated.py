from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.simulated import MAX_SERIES, SimulatedMarket

DAY_MS = 86_400_000
START_MS = 1_700_000_000_000
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"


@pytest.fixture(scope="module")
def day() -> pd.DataFrame:
    """24 h of the default 500-series market, one point a minute."""
    market = SimulatedMarket()
    return pd.concat(market.history(START_MS, START_MS + DAY_MS), ignore_index=True)


def prices_of(frame: pd.DataFrame, pair: str) -> pd.DataFrame:
    """Price by time (rows) and exchange (columns) for one pair."""
    return frame[frame["pair"] == pair].pivot(index="time", columns="exchange", values="price")


def test_snapshot_columns_and_dtypes() -> None:
    frame = SimulatedMarket().snapshot(START_MS)
    assert tuple(frame.columns) == ("time", "exchange", "pair", "price", "volume")
    assert frame["time"].dtype == np.int64
    assert frame["price"].dtype == np.float64
    assert frame["volume"].dtype == np.float64
    assert pd.api.types.is_string_dtype(frame["exchange"])
    assert pd.api.types.is_string_dtype(frame["pair"])


def test_snapshot_one_row_per_series_at_given_time() -> None:
    market = SimulatedMarket(series=321)
    frame = market.snapshot(START_MS)
    assert len(frame) == 321
    assert (frame["time"] == START_MS).all()
    assert frame[["exchange", "pair"]].equals(market.universe)


@pytest.mark.parametrize("series", [1, 500, 14_000, MAX_SERIES], ids=lambda n: f"series={n}")
def test_universe_size_matches_series(series: int) -> None:
    universe = SimulatedMarket(series=series).universe
    assert len(universe) == series
    assert not universe.duplicated().any()


def test_universe_default_spans_many_exchanges() -> None:
    assert SimulatedMarket().universe["exchange"].nunique() >= 20


@pytest.mark.parametrize("pair", ["btcusd", "ethusd", "btcusdt"])
def test_universe_popular_pair_on_several_exchanges(pair: str) -> None:
    universe = SimulatedMarket().universe
    assert (universe["pair"] == pair).sum() >= 5


def test_universe_smaller_market_is_prefix_with_same_series() -> None:
    small = SimulatedMarket(series=50, seed=4).snapshot(START_MS)
    large = SimulatedMarket(series=2_000, seed=4).snapshot(START_MS)
    pd.testing.assert_frame_equal(small, large.head(50))


def test_universe_ids_match_pattern() -> None:
    universe = SimulatedMarket(series=MAX_SERIES).universe
    assert universe["exchange"].str.fullmatch(ID_PATTERN).all()
    assert universe["pair"].str.fullmatch(ID_PATTERN).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_universe_deterministic_per_seed(seed: int) -> None:
    first = SimulatedMarket(series=800, seed=seed).universe
    assert first.equals(SimulatedMarket(series=800, seed=seed).universe)
    assert not first.equals(SimulatedMarket(series=800, seed=seed + 10).universe)


def test_history_prices_positive_finite(day: pd.DataFrame) -> None:
    price = day["price"].to_numpy()
    assert np.isfinite(price).all()
    assert (price > 0).all()


def test_history_volumes_nonnegative_finite(day: pd.DataFrame) -> None:
    volume = day["volume"].to_numpy()
    assert np.isfinite(volume).all()
    assert (volume >= 0).all()


@pytest.mark.parametrize(
    ("pair", "low", "high"),
    [("btcusd", 1e3, 1e6), ("ethusdt", 100.0, 1e5), ("btcjpy", 1e6, 1e8), ("adabtc", 1e-7, 1e-3)],
    ids=["btcusd", "ethusdt", "btcjpy", "adabtc"],
)
def test_history_price_magnitude_plausible(
    day: pd.DataFrame, pair: str, low: float, high: float
) -> None:
    price = day.loc[day["pair"] == pair, "price"]
    assert not price.empty
    assert price.between(low, high).all()


def test_history_btc_quoted_pairs_below_one(day: pd.DataFrame) -> None:
    in_btc = day[day["pair"].str.endswith("btc")]
    assert not in_btc.empty
    assert (in_btc["price"] < 1).all()


def test_history_btcusd_cross_exchange_spread_small(day: pd.DataFrame) -> None:
    btcusd = prices_of(day, "btcusd")
    spread = btcusd.max(axis=1) / btcusd.min(axis=1) - 1
    assert (spread < 0.02).all()


def test_history_btc_minute_volatility_realistic(day: pd.DataFrame) -> None:
    returns = np.diff(np.log(prices_of(day, "btcusd").to_numpy()), axis=0)
    assert 0.0003 < float(np.median(returns.std(axis=0))) < 0.0015


def test_history_covers_every_series_at_every_step(day: pd.DataFrame) -> None:
    expected = np.arange(START_MS, START_MS + DAY_MS, 60_000)
    assert len(day) == expected.size * 500
    assert np.array_equal(day["time"].unique(), expected)
    assert (day.groupby("time").size() == 500).all()


@pytest.mark.parametrize("chunk_points", [1, 500, 1_234, 10**9], ids=lambda c: f"chunk={c}")
def test_history_chunks_respect_chunk_points(chunk_points: int) -> None:
    frames = list(SimulatedMarket().history(0, 3_600_000, 60_000, chunk_points))
    assert sum(len(f) for f in frames) == 60 * 500
    assert all(len(f) <= max(chunk_points, 500) and len(f) % 500 == 0 for f in frames)
    times = pd.concat(frames)["time"].to_numpy()
    assert (np.diff(times) >= 0).all()


def test_history_chunking_does_not_change_values() -> None:
    whole = pd.concat(SimulatedMarket(seed=5).history(0, 7_200_000, chunk_points=10**9))
    pieces = pd.concat(SimulatedMarket(seed=5).history(0, 7_200_000, chunk_points=700))
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), pieces.reset_index(drop=True))


def test_history_equals_same_sequence_of_snapshots() -> None:
    history = pd.concat(SimulatedMarket(seed=2).history(0, 600_000), ignore_index=True)
    market = SimulatedMarket(seed=2)
    ticks = pd.concat([market.snapshot(t) for t in range(0, 600_000, 60_000)], ignore_index=True)
    pd.testing.assert_frame_equal(history, ticks)


def test_history_empty_range_yields_nothing() -> None:
    assert list(SimulatedMarket().history(START_MS, START_MS)) == []


@pytest.mark.parametrize(
    ("step_ms", "chunk_points"), [(0, 10), (-60_000, 10), (60_000, 0)], ids=["zero", "neg", "chunk"]
)
def test_history_bad_arguments_raise(step_ms: int, chunk_points: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        SimulatedMarket().history(0, DAY_MS, step_ms, chunk_points)


def test_snapshot_after_history_continues_walk() -> None:
    market = SimulatedMarket(series=200)
    last = list(market.history(0, 3_600_000))[-1].tail(200)
    tick = market.snapshot(3_600_000)
    assert (tick["time"] == 3_600_000).all()
    assert (last["time"] == 3_540_000).all()
    jump = np.abs(np.log(tick["price"].to_numpy() / last["price"].to_numpy()))
    assert np.median(jump) < 0.005
    assert jump.max() < 0.1


def test_snapshot_same_seed_identical_frames() -> None:
    first, second = SimulatedMarket(seed=7), SimulatedMarket(seed=7)
    for t in (START_MS, START_MS + 60_000, START_MS + 1_000):
        pd.testing.assert_frame_equal(first.snapshot(t), second.snapshot(t))


def test_snapshot_other_seed_differs() -> None:
    a = SimulatedMarket(series=50, seed=1).snapshot(START_MS)
    b = SimulatedMarket(series=50, seed=2).snapshot(START_MS)
    assert not a["price"].equals(b["price"])


def test_snapshot_repeated_time_does_not_move_walk() -> None:
    market = SimulatedMarket(series=100)
    first = market.snapshot(START_MS)["price"].to_numpy()
    again = market.snapshot(START_MS)["price"].to_numpy()
    assert np.abs(np.log(again / first)).max() < 0.01  # only per-tick noise


@pytest.mark.parametrize("series", [0, -1, MAX_SERIES + 1])
def test_init_series_out_of_range_raises(series: int) -> None:
    with pytest.raises(ValueError, match="series must be between 1 and"):
        SimulatedMarket(series=series)


def test_snapshot_of_fourteen_thousand_series_prices_each_once() -> None:
    frame = SimulatedMarket(series=14_000).snapshot(START_MS)
    assert len(frame) == 14_000
    assert not frame.duplicated(["exchange", "pair"]).any()
    assert np.isfinite(frame["price"]).all()
    assert (frame["price"] > 0).all()


def test_history_volume_spikes_exist_over_a_day(day: pd.DataFrame) -> None:
    volume = day.pivot(index="time", columns=["exchange", "pair"], values="volume")
    ratio = volume / volume.rolling(60).mean().shift(1)
    assert int((ratio > 3).any().sum()) >= 5


def test_history_price_jumps_rare_but_present(day: pd.DataFrame) -> None:
    price = day.pivot(index="time", columns=["exchange", "pair"], values="price").to_numpy()
    returns = np.diff(np.log(price), axis=0)
    assert 0 < (np.abs(returns) > 0.015).sum() < 0.001 * returns.size


def test_market_resumed_continues_from_the_stored_prices() -> None:
    before = SimulatedMarket(series=200, seed=4)
    last = list(before.history(0, 24 * 3_600_000))[-1].tail(200)
    after = SimulatedMarket(series=200, seed=4)
    after.resume(last)
    moved = np.log(after.snapshot(24 * 3_600_000)["price"].to_numpy() / last["price"].to_numpy())
    assert np.abs(moved).max() < 0.02  # one minute's move, not a day's


def test_market_resumed_grown_prices_new_series_like_their_pair() -> None:
    last = list(SimulatedMarket(series=200, seed=4).history(0, 24 * 3_600_000))[-1].tail(200)
    grown = SimulatedMarket(series=400, seed=4)
    grown.resume(last)
    tick = grown.snapshot(24 * 3_600_000)
    new = tick.iloc[200:]
    old_mean = last.groupby("pair")["price"].mean()
    shared = new[new.pair.isin(old_mean.index)]
    assert len(shared) > 0
    ratio = shared["price"].to_numpy() / old_mean[shared.pair].to_numpy()
    assert np.abs(np.log(ratio)).max() < 0.05
