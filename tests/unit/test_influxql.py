from __future__ import annotations

import pytest

from federation.core.durations import Duration
from federation.core.influxql import prices_query, quote_ident, quote_literal, stddev_query


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("btcusd", "'btcusd'"),
        ("x' OR 1=1 --", "'x\\' OR 1=1 --'"),
        ("back\\slash", "'back\\\\slash'"),
        ("a\nb", "'a\\nb'"),
        ('say "hi"', "'say \"hi\"'"),
    ],
    ids=["plain", "quote", "backslash", "newline", "double-quote-kept"],
)
def test_quote_literal_escapes(value: str, expected: str) -> None:
    assert quote_literal(value) == expected


def test_quote_ident_escapes_double_quote() -> None:
    assert quote_ident('we"ird') == '"we\\"ird"'


def test_quote_refuses_control_characters() -> None:
    with pytest.raises(ValueError, match="control characters"):
        quote_literal("a\x00b")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("-30s", 30), ("-15m", 900), ("-24h", 86400), ("-7d", 604800), ("-2w", 1209600)],
    ids=["s", "m", "h", "d", "w"],
)
def test_duration_parse_valid(text: str, seconds: int) -> None:
    duration = Duration.parse(text)
    assert (duration.seconds, str(duration)) == (seconds, text)


@pytest.mark.parametrize(
    "text",
    ["24h", "-0h", "-1.5h", "-1y", "-1h; DROP DATABASE crypto", "-", "-01h", "-1" + "0" * 15 + "h"],
    ids=["no-minus", "zero", "fraction", "unit", "injection", "empty", "leading-zero", "digits"],
)
def test_duration_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


def test_prices_query_quotes_user_values() -> None:
    query = prices_query("a'b", Duration(1, "h"), exchange="c").text
    assert query.endswith("WHERE time > now() - 1h AND \"pair\" = 'a\\'b' AND \"exchange\" = 'c'")


def test_stddev_query_groups_by_series() -> None:
    query = stddev_query(Duration(24, "h")).text
    assert query.startswith('SELECT STDDEV("price") FROM "price" WHERE time > now() - 24h')
    assert query.endswith('GROUP BY "exchange", "pair"')
