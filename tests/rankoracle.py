"""The rank table's oracle: pandas on the raw points of every shard."""

from __future__ import annotations

import pandas as pd
import pytest

from federation.router.ranktable import RankSnapshot


def assert_table_of_raw(snapshot: RankSnapshot | None, raw: pd.DataFrame, seconds: int) -> None:
    """``snapshot`` lists every series of the points in (as_of - seconds, as_of] in the
    order of their sample deviation (largest first, ties by exchange then pair), with it."""
    assert snapshot is not None
    inside = raw[(raw.time > snapshot.as_of - seconds * 1000) & (raw.time <= snapshot.as_of)]
    expected = (
        inside.groupby(["exchange", "pair"])["price"]
        .std(ddof=1)
        .reset_index()
        .sort_values(["price", "exchange", "pair"], ascending=[False, True, True])
    )
    got = snapshot.table
    assert list(zip(got.exchange, got.pair, strict=True)) == list(
        zip(expected.exchange, expected.pair, strict=True)
    )
    assert got.stddev.to_numpy() == pytest.approx(expected.price.to_numpy(), rel=1e-9)
