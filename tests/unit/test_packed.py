"""A shard's price chunks in MessagePack: the C reading (``read_packed`` and ``elements``
in ``federation/router/_chunkreader.c``) against the JSON reading of the same points,
each price's text against Go's layout as NumPy writes it (an independent oracle),
what is left to the general reading, and the objects of a body found however it is cut.
A real influxd holds the layout to its own JSON: tests/integration/test_packed_live.py."""

from __future__ import annotations

import random
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest

from federation.core import influx
from federation.core.errors import QueryError, ShardUnavailable
from federation.router._chunkreader import read_packed
from federation.router.rows import go_number, rows_of_chunk
from tests.unit.test_chunkreader import NAMES, YEAR_10000
from tests.unit.test_rows import columns, plain

EDGES = [0.0, -0.0, 1.0, -1.5, 0.1, 1e-5, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 5e-324, 1e20, 1e21]
EDGES += [9.999999999999999e20, 123456789012345680000.0, -2.5e22, 1.7976931348623157e308]


def go_text(x: float) -> str:
    """Go's encoding/json layout of a float64 (shortest digits; exponent form below 1e-6
    and from 1e21, its "e-07" written "e-7"), by NumPy's Dragon4, not the code's Ryu."""
    if x != 0 and not 1e-6 <= abs(x) < 1e21:
        text = np.format_float_scientific(x, unique=True, trim="-", exp_digits=2)
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return np.format_float_positional(x, unique=True, trim="-")


def packed(values: list[list[Any]], columns: list[str] | None = None, **result: Any) -> bytes:
    series = {"name": "price", "columns": columns or ["time", "price", "exchange"]}
    answer = {"statement_id": 0, "series": [series | {"values": values}]} | result
    return msgpack.packb({"results": [answer]})


def random_floats(rng: random.Random, n: int) -> list[float]:
    """Prices of a market, and any float64 at all (random bits, but NaN and infinities)."""
    out = []
    while len(out) < n:
        bits = struct.unpack("<d", rng.randbytes(8))[0]
        x = rng.choice([bits, rng.uniform(-1e6, 1e6), rng.choice(EDGES), float(rng.randrange(99))])
        if np.isfinite(x):
            out.append(x)
    return out


def random_points(seed: int) -> list[list[Any]]:
    rng = random.Random(seed)
    times = sorted(rng.randrange(0, YEAR_10000) for _ in range(rng.randint(1, 30)))
    if seed % 2:
        rng.shuffle(times)
    rows = [[t, 0.0, name] for t in times for name in rng.sample(NAMES, rng.randint(1, 5))]
    for row, price in zip(rows, random_floats(rng, len(rows)), strict=True):
        row[1] = price
    return rows


@pytest.mark.parametrize("seed", range(40), ids=[f"seed-{s}" for s in range(40)])
def test_packed_reading_gives_the_json_readings_columns(seed: int) -> None:
    rows = random_points(seed)
    assert read_packed(packed(rows)) is not None  # read by C, not declined
    as_json = plain([(t, go_text(p), orjson.dumps(e).decode()) for t, p, e in rows])
    assert columns(rows_of_chunk("s", packed(rows))) == columns(rows_of_chunk("s", as_json))


@pytest.mark.parametrize("seed", range(5), ids=[f"seed-{s}" for s in range(5)])
def test_go_number_lays_floats_out_as_go(seed: int) -> None:
    floats = random_floats(random.Random(seed), 2_000)
    assert [orjson.dumps(go_number(x)).decode() for x in floats] == [go_text(x) for x in floats]


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e21, "1e+21"), (1e-7, "1e-7"), (1e20, "100000000000000000000"), (-0.0, "-0"), (5.0, "5")],
    ids=["e+21", "e-7", "1e20", "minus-zero", "integral"],
)
def test_packed_price_is_written_as_influxdb_writes_it(value: float, text: str) -> None:
    element = rows_of_chunk("s", packed([[1, value, "a"]])).encoded()
    assert element.startswith(b'{"price":%s,' % text.encode())


@pytest.mark.parametrize(
    ("values", "columns", "result"),
    [
        ([[1, 5, "a"], [2, 2**63 - 1, "b"]], None, {}),
        ([[1, "5", "a"]], None, {}),
        ([[1, None, "a"]], None, {}),
        ([[1, True, "a"]], None, {}),
        ([[1, 1.5, 'a"b'], [2, 2.5, "c\\d"], [3, 3.5, "e\tf"]], None, {}),
        ([["a", 1, 1.5]], ["exchange", "time", "price"], {}),
        ([[1, 1.5, "a"]], None, {"partial": True, "messages": [{"level": "warning", "text": "x"}]}),
    ],
    ids=["integers", "string", "null", "bool", "escapes", "column-order", "messages"],
)
def test_packed_shapes_c_declines_read_as_json_says(
    values: list[list[Any]], columns: list[str] | None, result: dict[str, Any]
) -> None:
    chunk = packed(values, columns, **result)
    names = columns or ["time", "price", "exchange"]
    series = {"name": "price", "columns": names, "values": values}
    as_json = orjson.dumps({"results": [{"statement_id": 0, "series": [series]} | result]})
    if columns is None and "messages" not in result:  # some are the C reading's to decline
        assert read_packed(chunk) is None
    assert rows_of_chunk("s", chunk).encoded() == rows_of_chunk("s", as_json).encoded()


def test_packed_smallest_points_are_read_by_c() -> None:
    rows = [[t, 1.5, ""] for t in range(100)]  # 12 bytes a point: the least there is
    as_json = plain([(t, "1.5", '""') for t, _, _ in rows])
    assert read_packed(packed(rows)) is not None
    assert columns(rows_of_chunk("s", packed(rows))) == columns(rows_of_chunk("s", as_json))


def test_packed_float32_price_reads_as_json_says() -> None:
    chunk = packed([[1, 1.5, "a"]]).replace(b"\xcb?\xf8" + bytes(6), b"\xca?\xc0\x00\x00")
    assert read_packed(chunk) is None
    assert rows_of_chunk("s", chunk).encoded().startswith(b'{"price":1.5,')


def test_packed_error_raises_what_the_shard_says() -> None:
    chunk = msgpack.packb({"results": [{"statement_id": 0, "error": "database not found: x"}]})
    with pytest.raises(QueryError, match="database not found: x"):
        rows_of_chunk("s", chunk)


def test_packed_name_not_in_utf8_raises_as_not_msgpack() -> None:
    chunk = packed([[1, 1.5, "a"]]).replace(b"\xa1a", b"\xa1\xff")
    with pytest.raises(ShardUnavailable, match="not MessagePack"):
        rows_of_chunk("s", chunk)


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


# The last but one holds the bytes each object starts with inside a name (U+1067 is
# E1 81 A7 in UTF-8): a start that is not one.
OBJECTS = [packed(random_points(seed)) for seed in range(3)]
OBJECTS += [packed([[1, 1.5, "\u1067results"]] * 50), packed([])]


@pytest.mark.parametrize("size", [1, 5, 64, 1 << 20], ids=["bytes", "5", "64", "whole"])
async def test_packed_objects_arrive_as_sent_cut_anywhere(size: int) -> None:
    found = [o async for o in influx._objects("s", pieces(b"".join(OBJECTS), size))]
    assert found == OBJECTS


@pytest.mark.parametrize(
    ("body", "reason"),
    [(OBJECTS[0][:-3], "cut short"), (b"\xc1" + OBJECTS[0], "not MessagePack")],
    ids=["cut-short", "garbage"],
)
async def test_packed_body_not_whole_objects_is_a_shard_error(body: bytes, reason: str) -> None:
    with pytest.raises(ShardUnavailable, match=reason):
        _ = [o async for o in influx._objects("s", pieces(body, 7))]


async def test_packed_object_past_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influx, "MAX_PACKED", 1_000)
    with pytest.raises(ShardUnavailable, match="over 1,000 bytes"):
        _ = [o async for o in influx._objects("s", pieces(b"".join(OBJECTS) * 20, 4096))]
