from __future__ import annotations

import random
import statistics

import pytest

from federation.core.types import Series
from federation.router.rank import places, rank_of, table_from_series
from federation.router.ranktable import RankSnapshot


def stddev_series(exchange: str, pair: str, value: float | None) -> Series:
    return {
        "name": "price",
        "tags": {"exchange": exchange, "pair": pair},
        "columns": ["time", "stddev"],
        "values": [[0, value]],
    }


SHARD_1 = [stddev_series("kraken", "btcusd", 5.0), stddev_series("kraken", "ethusd", 9.0)]
SHARD_2 = [stddev_series("binance", "btcusd", 7.0), stddev_series("binance", "dogeusd", None)]


def test_rank_is_first_series_of_pair_in_descending_order() -> None:
    table = table_from_series([SHARD_1, SHARD_2])
    assert rank_of(table, "btcusd") == (2, 4)
    assert rank_of(table, "ethusd") == (1, 4)


def test_rank_puts_series_without_stddev_last() -> None:
    assert rank_of(table_from_series([SHARD_1, SHARD_2]), "dogeusd") == (4, 4)


def test_rank_ignores_replicated_series() -> None:
    assert rank_of(table_from_series([SHARD_1, SHARD_1, SHARD_2]), "btcusd") == (2, 4)


def test_rank_does_not_depend_on_shard_order() -> None:
    tied = [stddev_series("a", "x", 1.0)], [stddev_series("b", "y", 1.0)]
    assert table_from_series(tied).equals(table_from_series(reversed(tied)))


def test_rank_of_unknown_pair_is_none() -> None:
    assert rank_of(table_from_series([SHARD_1]), "nope") is None


def test_rank_of_empty_table_is_none() -> None:
    assert rank_of(table_from_series([]), "btcusd") is None


@pytest.mark.parametrize("pair", ["xrpusd", "btcusd", "dogeusd", "nope"])
@pytest.mark.parametrize("shards", [[], [SHARD_1], [SHARD_1, SHARD_2]], ids=["0", "1", "2"])
def test_snapshot_ranks_as_rank_of(pair: str, shards: list[list[Series]]) -> None:
    table = table_from_series(shards)
    assert RankSnapshot(table, as_of=0).rank(pair) == rank_of(table, pair)


Key = tuple[str, str]  # (exchange, pair)

# Raw prices per series. By hand: binance/xrpusd 7.07; kraken/btcusd 2.5; three ties at
# sqrt(2): bitstamp/adausd, bitstamp/ethusd (same exchange: by pair), kraken/ethusd (by
# exchange); binance/btcusd 0.58; then the one-point series, by exchange.
HAND_MADE: dict[Key, list[float]] = {
    ("binance", "btcusd"): [5.0, 5.0, 6.0],
    ("binance", "solusd"): [5.0],
    ("binance", "xrpusd"): [0.0, 10.0],
    ("bitstamp", "adausd"): [11.0, 13.0],
    ("bitstamp", "ethusd"): [11.0, 13.0],
    ("kraken", "btcusd"): [100.0, 104.0, 98.0, 101.0],
    ("kraken", "dogeusd"): [0.1],
    ("kraken", "ethusd"): [1.0, 3.0],
}


def market(seed: int) -> dict[Key, list[float]]:
    """Series of one to four whole prices from 1 to 3: ties and one-point series are common."""
    rng = random.Random(seed)
    keys = {
        (rng.choice("abcd"), rng.choice(["btcusd", "ethusd", "solusd", "xrpeur"]))
        for _ in range(12)
    }
    return {k: [float(rng.randint(1, 3)) for _ in range(rng.randint(1, 4))] for k in sorted(keys)}


def sample_stddev(prices: list[float]) -> float | None:
    """What a shard's STDDEV answers: the sample deviation, null below two points."""
    return statistics.stdev(prices) if len(prices) >= 2 else None


def by_rule(points: dict[Key, list[float]]) -> list[Key]:
    """The documented order, in plain Python: largest deviation first, series without one
    last, ties by exchange then pair."""
    sd = {key: sample_stddev(prices) for key, prices in points.items()}
    return sorted(sd, key=lambda k: (sd[k] is None, -(sd[k] or 0.0), k))


def shard_answers(points: dict[Key, list[float]]) -> list[list[Series]]:
    """Three shards' STDDEV answers; every other series is on a second shard as well."""
    keys = sorted(points)
    return [
        [
            stddev_series(*key, sample_stddev(points[key]))
            for i, key in enumerate(keys)
            if i % 3 == shard or (i % 2 == 0 and (i + 1) % 3 == shard)
        ]
        for shard in range(3)
    ]


@pytest.mark.parametrize(
    ("pair", "rank"),
    [("xrpusd", 1), ("btcusd", 2), ("adausd", 3), ("ethusd", 4), ("solusd", 7), ("dogeusd", 8)],
    ids=["largest", "first-of-two-series", "tie-by-pair", "tie-by-exchange", "one-point", "last"],
)
def test_rank_of_hand_ranked_pairs(pair: str, rank: int) -> None:
    assert rank_of(table_from_series(shard_answers(HAND_MADE)), pair) == (rank, 8)


@pytest.mark.parametrize(
    "points", [HAND_MADE, market(0), market(1), market(2)], ids=["hand-made", "s0", "s1", "s2"]
)
def test_rank_table_follows_the_documented_rule(points: dict[Key, list[float]]) -> None:
    order = by_rule(points)
    for answers in (shard_answers(points), shard_answers(points)[::-1]):
        table = table_from_series(answers)
        assert list(zip(table["exchange"], table["pair"], strict=True)) == order
        for pair in {p for _, p in order}:
            first = next(i for i, (_, p) in enumerate(order) if p == pair)
            assert rank_of(table, pair) == (first + 1, len(order))
            assert places(table)[pair] == first + 1
