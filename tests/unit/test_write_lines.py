"""/write's line checks, times and placement keys. InfluxDB's wording of each refusal is
checked against real influxd in tests/integration/test_influx_write_live.py."""

from __future__ import annotations

import pytest

from federation.core.lineproto import pairs_of
from federation.core.placement import placement_key
from federation.router.frontdoor.lines import keys_of, parse_body


def parse(body: str, precision: str = "", tag: str | None = None) -> tuple[list[str], list[str]]:
    parsed = parse_body(body, precision=precision, now_ns=42, placement_tag=tag)
    return parsed.lines, parsed.errors


@pytest.mark.parametrize(
    "body",
    ["", "\n\n", "# a comment\n", "   \n  # indented comment"],
    ids=["empty", "blank-lines", "comment", "indented"],
)
def test_lines_blank_and_comments_skipped(body: str) -> None:
    assert parse(body) == ([], [])


def test_lines_leading_spaces_and_extra_separators_kept_as_influxd_reads_them() -> None:
    assert parse('  cpu,a=b  v=1i,w="x y"   7') == (['cpu,a=b v=1i,w="x y" 7'], [])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("cpu v=1 9223372036854775", "time outside range"),
        ("cpu v=1 -9223372036854775", "time outside range"),
    ],
    ids=["after", "before"],
)
def test_lines_time_past_influxdb_range_refused(line: str, reason: str) -> None:
    assert reason in parse(line, precision="s")[1][0]


def test_lines_keys_of_a_spooled_body_match_the_ingesters_pairs() -> None:
    body = "price,exchange=a\\ b,pair=btc\\,usd price=1 1\nprice,exchange=x,pair=ethusd price=2 2"
    lines, _ = parse(body)
    spooled = ("\n".join(lines) + "\n").encode()
    assert keys_of(spooled, None) == pairs_of(spooled) == ["btc,usd", "ethusd"]


def test_lines_placement_tag_unescaped() -> None:
    lines, _ = parse("cpu,host=web\\ 1 v=1 1", tag="host")
    assert keys_of((lines[0] + "\n").encode(), "host") == ["web 1"]


@pytest.mark.parametrize(
    ("line", "tag", "key"),
    [
        ("price,pair=btcusd,exchange=k price=1 1", "exchange", "btcusd"),
        ("price,exchange=k price=1 1", "exchange", "k"),
        ("price,exchange=k price=1 1", None, "price,exchange=k"),
        ("depth,pair=btcusd,exchange=k size=1 1", "exchange", "k"),
        ("depth,side=bid,pair=btcusd size=1 1", None, "depth,pair=btcusd,side=bid"),
        ("my\\ m,z=a\\,b,a=c\\=d v=1 1", "host", "my\\ m,a=c\\=d,z=a\\,b"),
    ],
    ids=["price-pair", "price-no-pair-tag", "price-no-pair", "other-tag", "series-key", "escaped"],
)
def test_lines_placement_key_as_documented(line: str, tag: str | None, key: str) -> None:
    lines, _ = parse(line, tag=tag)
    assert keys_of((lines[0] + "\n").encode(), tag) == [key]


@pytest.mark.parametrize("tag", [None, "side"], ids=["series-key", "placement-tag"])
def test_lines_placement_key_found_again_from_a_group_by_star_series(tag: str | None) -> None:
    """/query reads a series' tags unescaped, every tag key of the measurement present
    ("" where the series lacks it): the key must be the one /write placed it by."""
    lines, _ = parse("de\\,pth,side=b\\ id,exchange=k v=1 1", tag=tag)
    read = placement_key("de,pth", {"exchange": "k", "pair": "", "side": "b id"}, tag)
    assert keys_of((lines[0] + "\n").encode(), tag) == [read]
