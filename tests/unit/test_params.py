from __future__ import annotations

import pytest

from federation.core.errors import BadParameter
from federation.router.params import PairQuery

MAX = 30 * 86400


def test_pair_query_defaults() -> None:
    query = PairQuery.parse("BTCUSD", [], MAX)
    assert (query.pair, query.exchange, str(query.duration), query.strict) == (
        "btcusd",
        None,
        "-24h",
        False,
    )


@pytest.mark.parametrize(
    ("pair", "params", "parameter"),
    [
        ("btc'usd", {}, "pair"),
        ("x" * 65, {}, "pair"),
        ("-btc", {}, "pair"),
        (".imx", {}, "pair"),
        ("btcusd", {"exchange": "kraken' OR '1'='1"}, "exchange"),
        ("btcusd", {"duration": "24h"}, "duration"),
        ("btcusd", {"duration": "-31d"}, "duration"),
        ("btcusd", {"strict": "maybe"}, "strict"),
        ("btcusd", {"exchagne": "kraken"}, "exchagne"),
    ],
    ids=[
        "quote",
        "too-long",
        "leading-dash",
        "leading-dot",
        "injection",
        "no-minus",
        "over-retention",
        "strict-not-bool",
        "unknown",
    ],
)
def test_pair_query_bad_input_names_parameter(
    pair: str, params: dict[str, str], parameter: str
) -> None:
    with pytest.raises(BadParameter) as info:
        PairQuery.parse(pair, params.items(), MAX)
    assert info.value.parameter == parameter
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("pair", "exchange", "expected"),
    [("IMX.2WETH", "uniswap-v3", ("imx.2weth", "uniswap-v3")), ("a.b", "x.y", ("a.b", "x.y"))],
    ids=["dex-pool", "dots-in-both"],
)
def test_pair_query_dot_in_id_accepted(pair: str, exchange: str, expected: tuple[str, str]) -> None:
    query = PairQuery.parse(pair, [("exchange", exchange)], MAX)
    assert (query.pair, query.exchange) == expected


def test_pair_query_huge_duration_is_too_long_not_malformed() -> None:
    with pytest.raises(BadParameter, match="longer than the 30d"):
        PairQuery.parse("btcusd", [("duration", "-99999999999d")], MAX)
