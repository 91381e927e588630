"""The C reader of a chunk's values (``federation/router/_chunkreader.c``): against the
general reading (``json.loads``, orjson and NumPy's time text) as its oracle, on random
chunks and at its edges, and what it declines."""

from __future__ import annotations

import random

import pytest

from federation.core.errors import ShardUnavailable
from federation.core.timefmt import iso_time
from federation.router._chunkreader import read_values
from federation.router.rows import PriceRows, rows_of_chunk
from tests.unit.test_rows import chunk, columns, plain, reordered

YEAR_10000 = 253_402_300_800_000  # the first time past the four-digit years
PRICES = ["0", "-0", "7", "62052.70425322867", "-1.5", "1e+21", "1e-07", "2E5", "0.0", "-0e1"]
NAMES = ["binance", "a", "ab", "b", "", "prix€", "kraken-futures", "x y", "日本", "a/b", "~"]


def random_rows(seed: int) -> list[tuple[int, str, str]]:
    """Ticks of random exchanges at random times (some shared, some out of order)."""
    rng = random.Random(seed)
    times = sorted(rng.randrange(0, YEAR_10000) for _ in range(rng.randint(1, 30)))
    if seed % 2:
        rng.shuffle(times)
    rows = []
    for t in times:
        for name in rng.sample(NAMES, rng.randint(1, 5)):
            price = rng.choice([*PRICES, repr(rng.uniform(-1e6, 1e6)), str(rng.randrange(10**20))])
            rows.append((t, price, f'"{name}"'))
    return rows


def values(rows: list[tuple[int, str, str]]) -> bytes:
    return ",".join(f"[{t},{p},{e}]" for t, p, e in rows).encode()


def read(text: str) -> PriceRows:
    return rows_of_chunk("s", chunk(text))


@pytest.mark.parametrize("seed", range(40), ids=[f"seed-{s}" for s in range(40)])
def test_reader_gives_the_general_readings_columns(seed: int) -> None:
    rows = random_rows(seed)
    assert read_values(values(rows)) is not None  # read by C, not declined
    assert columns(rows_of_chunk("s", plain(rows))) == columns(rows_of_chunk("s", reordered(rows)))


@pytest.mark.parametrize(
    "time",
    [0, 1, 999, 1000, 86_399_999, 951_782_400_000, 4_107_542_400_000, YEAR_10000 - 1],
    ids=["epoch", "one-ms", "999-ms", "one-s", "day-end", "2000-02-29", "2100-03-01", "9999-end"],
)
def test_reader_writes_times_as_the_api_does(time: int) -> None:
    assert read(f'[{time},1,"a"]').encoded() == (
        b'{"price":1,"time":"%s","exchange":"a"}' % iso_time(time).encode()
    )


@pytest.mark.parametrize(
    "text",
    [
        f'[{YEAR_10000},1,"a"]',
        '[-1,1,"a"]',
        '[01,1,"a"]',
        '[1234567890123456789,1,"a"]',
        '[1,null,"a"]',
        '[1,1.,"a"]',
        '[1,.5,"a"]',
        '[1,1e,"a"]',
        '[1,+1,"a"]',
        '[1,--1,"a"]',
        '[1,1,"a\\"b"]',
        '[1,1,"a\tb"]',
        '[1,1,"a"],',
        '[1,1,"a"]x',
        '[1,1,"a"',
        '[1,1,a]',
        "",
        ",".join(f'[1,1,"e{i}"]' for i in range(257)),
    ],
    ids=[
        "year-10000", "negative-time", "leading-zero", "nineteen-digits", "null-price",
        "bare-point", "no-integer-part", "bare-exponent", "plus-sign", "two-minuses",
        "escaped-name", "control-in-name", "trailing-comma", "trailing-garbage", "truncated",
        "unquoted-name", "empty", "257-exchanges",
    ],
)  # fmt: skip
def test_reader_declines_what_it_does_not_read_exactly(text: str) -> None:
    assert read_values(text.encode()) is None


@pytest.mark.parametrize(
    ("names", "in_order"),
    [
        (["a", "ab", "b"], True),
        (["ab", "a"], False),
        (["z", "é"], True),
        (["é", "z"], False),
        (["a", "a"], False),
    ],
    ids=["prefix-first", "prefix-last", "ascii-before-accent", "accent-before-ascii", "twice"],
)
def test_reader_orders_names_of_a_time_as_python_does(names: list[str], in_order: bool) -> None:
    rows = [(1000, "1", f'"{n}"') for n in names]
    assert rows_of_chunk("s", plain(rows)).in_order is in_order


def test_reader_leaves_a_name_not_in_utf8_to_the_general_reading() -> None:
    rows = [(1000, "1", '"a"')]
    assert read_values(values(rows).replace(b"a", b"\xff")) is not None
    with pytest.raises(ShardUnavailable):
        rows_of_chunk("s", plain(rows).replace(b'"a"', b'"\xff"'))
