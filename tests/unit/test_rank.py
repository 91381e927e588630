from __future__ import annotations

import math

import pandas as pd
import pytest

from federation.core.types import Series
from federation.router.rank import rank_of, sort_table, table_from_series


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


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["s0", "s1", "s2"])
def test_sort_table_matches_plain_pandas_ranking(seed: int) -> None:
    frame = pd.DataFrame({"exchange": list("abcdefgh"), "pair": list("pqrstuvw")})
    frame["stddev"] = pd.Series(range(8)).sample(frac=1, random_state=seed).to_numpy() * 1.5
    expected = frame.sort_values("stddev", ascending=False)["pair"].tolist()
    assert sort_table(frame)["pair"].tolist() == expected
    assert not math.isnan(frame.stddev.sum())
