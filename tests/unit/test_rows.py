"""A shard's chunk read into the answer's elements: the plain way and the general way
give the same bytes, numbers keep the shard's text, and odd exchanges read back."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from federation.core.errors import QueryError, ShardUnavailable
from federation.router.rows import PriceRows, rows_of, rows_of_chunk
from tests.hostile import HOSTILE

PLAIN = ("time", "price", "exchange")


def chunk(values: str, columns: tuple[str, ...] = PLAIN, partial: bool = False) -> bytes:
    """A chunk as InfluxDB 1.x writes it, with ``values`` as the JSON text of the rows."""
    names = ",".join(f'"{c}"' for c in columns)
    series = f'{{"name":"price","columns":[{names}],"values":[{values}]'
    if partial:
        series += ',"partial":true}],"partial":true'
    else:
        series += "}]"
    return f'{{"results":[{{"statement_id":0,"series":[{series}}}]}}'.encode()


def reordered(rows: list[tuple[int, str, str]]) -> bytes:
    """The same rows with the columns in another order: read the general way."""
    values = ",".join(f"[{e},{t},{p}]" for t, p, e in rows)
    return chunk(values, ("exchange", "time", "price"))


def plain(rows: list[tuple[int, str, str]], partial: bool = False) -> bytes:
    return chunk(",".join(f"[{t},{p},{e}]" for t, p, e in rows), partial=partial)


def columns(rows: PriceRows) -> tuple[bytes, list[int], list[int], list[str], bool]:
    """Everything a reading gives: elements, where each starts, times, exchanges, order."""
    return rows.encoded(), rows.starts.tolist(), rows.times.tolist(), rows.exchanges, rows.in_order


def test_rows_have_the_original_shape() -> None:
    rows = rows_of_chunk("s", plain([(1665451202951, "19062.76", '"binance-us"')]))
    assert orjson.loads(b"[" + rows.encoded() + b"]") == [
        {"price": 19062.76, "time": "2022-10-11T01:20:02.951Z", "exchange": "binance-us"}
    ]


@pytest.mark.parametrize(
    "price",
    ["62052.70425322867", "62052", "1e+21", "1e-07", "0.1", "-0", "null", "123456789012345678901"],
    ids=["typical", "integral", "1e21", "1e-07", "0.1", "negative-zero", "null", "past-64-bits"],
)
def test_rows_keep_the_shards_number_text(price: str) -> None:
    rows = rows_of_chunk("s", plain([(1000, price, '"a"')]))
    assert rows.encoded() == b'{"price":%s,"time":"1970-01-01T00:00:01.000Z","exchange":"a"}' % (
        price.encode()
    )


@pytest.mark.parametrize("partial", [False, True], ids=["last", "partial"])
def test_rows_read_plainly_equal_rows_read_generally(partial: bool) -> None:
    rows = [(1000, "1.5", '"a"'), (1000, "62052", '"b"'), (2000, "1e-07", '"prix€"')]
    assert columns(rows_of_chunk("s", plain(rows, partial))) == columns(
        rows_of_chunk("s", reordered(rows))
    )


@pytest.mark.parametrize("name", HOSTILE.values(), ids=HOSTILE.keys())
def test_rows_of_any_exchange_read_back(name: str) -> None:
    values = f'[1000,1.5,{orjson.dumps(name).decode()}],[2000,2,"a"]'
    rows = rows_of_chunk("s", chunk(values))
    assert rows.points() == [(1000, 1.5, name), (2000, 2, "a")]


@pytest.mark.parametrize(
    "exchange",
    ['"a,b"', '"a,b,c,d"', '"a],[1,2"', '"a],[1,2,\\"c\\"]"', '"{x},{y}"', '"<&>"', "null"],
    ids=["comma", "three-commas", "row-like", "row-inside", "braces", "html", "null"],
)
def test_rows_of_an_odd_exchange_are_the_same_elements_either_way(exchange: str) -> None:
    rows = [(1000, "1.5", exchange), (1000, "2.5", '"b"')]
    assert columns(rows_of_chunk("s", plain(rows))) == columns(rows_of_chunk("s", reordered(rows)))


def test_rows_of_a_plain_chunk_decode_no_json(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr("federation.router.rows.parse_chunk", refuse)
    assert len(rows_of_chunk("s", plain([(1000, "1.5", '"a"'), (2000, "2", '"b"')], True))) == 2


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"results":[{"statement_id":0,"error":"boom"}]}', QueryError),
        (b'{"error":"boom"}', QueryError),
        (b'{"results":[{"statement_id":0,', ShardUnavailable),
    ],
    ids=["statement-error", "answer-error", "not-json"],
)
def test_rows_of_a_failed_chunk_raise(line: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        rows_of_chunk("s", line)


def test_rows_of_an_empty_answer_are_none() -> None:
    assert len(rows_of_chunk("s", b'{"results":[{"statement_id":0}]}')) == 0


@pytest.mark.parametrize(
    "points",
    [
        [(1, 1.0, "a"), (1, 1.0, "b"), (2, 1.0, "a")],
        [(1, 1.0, "b"), (1, 1.0, "a")],
        [(1, 1.0, "a"), (1, 2.0, "a")],
        [(2, 1.0, "a"), (1, 1.0, "b")],
        [],
    ],
    ids=["ordered", "exchanges-reversed", "duplicate", "time-reversed", "empty"],
)
def test_in_order_is_strictly_increasing_time_and_exchange(points: list[Any]) -> None:
    keys = [(t, e) for t, _, e in points]
    assert rows_of(points).in_order == (keys == sorted(set(keys)))


def test_merged_orders_and_keeps_the_last_of_a_time_and_exchange() -> None:
    runs = [rows_of([(2, 1.0, "a"), (1, 1.0, "b")]), rows_of([(1, 9.0, "b"), (1, 1.0, "a")])]
    assert PriceRows.merged(runs).points() == [(1, 1.0, "a"), (1, 9.0, "b"), (2, 1.0, "a")]


def test_take_cuts_points_and_elements_together() -> None:
    rows = rows_of([(1, 1.0, "a"), (2, 2.0, "a"), (3, 3.0, "a")])
    first = rows.take(2)
    assert (first.points(), rows.points()) == ([(1, 1.0, "a"), (2, 2.0, "a")], [(3, 3.0, "a")])


def test_starts_mark_each_element_of_the_encoded_rows() -> None:
    rows = rows_of([(1, 1.0, "a"), (2, 22.5, "bb")])
    encoded, starts = rows.encoded(), rows.starts.tolist()
    pieces = [encoded[a : b - 1] for a, b in itertools.pairwise(starts)]
    assert [orjson.loads(p)["price"] for p in pieces] == [1.0, 22.5]


@pytest.mark.parametrize(
    "rows",
    [
        [(1000, "1", '"b"'), (1000, "2", '"a"')],
        [(2000, "1", '"a"'), (1000, "2", '"b"')],
        [(1000, "1", '"a"'), (1000, "2", '"a"')],
        [(1000, "1", '"a"'), (1000, "2", '"b"'), (2000, "3", '"a"')],
    ],
    ids=["exchanges-reversed", "time-reversed", "duplicate", "ordered"],
)
def test_rows_of_a_chunk_tell_their_order_as_read_generally(rows: list[Any]) -> None:
    keys = [(t, e) for t, _, e in rows]
    read = rows_of_chunk("s", plain(rows))
    assert read.in_order == (keys == sorted(set(keys)))
    assert columns(read) == columns(rows_of_chunk("s", reordered(rows)))


@pytest.mark.parametrize(
    "times",
    [[999, 1000], [-1000, 1000], [10**17, 10**17 + 1], [1, 2]],
    ids=["widths-differ", "negative", "eighteen-digits", "one-digit"],
)
def test_rows_of_times_of_any_shape_read_as_the_general_way(times: list[int]) -> None:
    rows = [(t, "1.5", f'"e{i}"') for i, t in enumerate(times)]
    assert columns(rows_of_chunk("s", plain(rows))) == columns(rows_of_chunk("s", reordered(rows)))


@pytest.mark.parametrize(
    ("first", "second", "ordered"),
    [
        ([(1, 1.0, "a")], [(1, 1.0, "b")], True),
        ([(1, 1.0, "b")], [(1, 1.0, "a")], False),
        ([(2, 1.0, "a")], [(2, 1.0, "a")], False),
    ],
    ids=["after", "exchange-before", "same-point"],
)
def test_joined_runs_are_ordered_only_across_their_seam(
    first: list[Any], second: list[Any], ordered: bool
) -> None:
    joined = PriceRows.joined([rows_of(first), rows_of(second)])
    assert (joined.points(), joined.in_order) == (first + second, ordered)


def test_merged_runs_with_other_exchanges_keep_each_points_exchange() -> None:
    runs = [rows_of([(1, 1.0, "x"), (2, 2.0, "y")]), rows_of([(1, 3.0, "y"), (2, 4.0, "z")])]
    merged = PriceRows.merged(runs)
    assert merged.points() == [(1, 1.0, "x"), (1, 3.0, "y"), (2, 2.0, "y"), (2, 4.0, "z")]
    assert [e for _, _, e in merged.points()] == merged.exchanges


def test_take_keeps_the_order_it_was_read_in() -> None:
    rows = rows_of([(2, 1.0, "a"), (1, 1.0, "a"), (3, 1.0, "a")])
    assert (rows.take(1).in_order, rows.in_order) == (False, False)
