"""What a SELECT is sent so each series' placement key is known, and which shard's copy
of a series is read. Their answers against real influxd at replication 2, with and
without a placement_tag: tests/integration/test_influx_differential.py."""

from __future__ import annotations

import pytest

from federation.core.influxql_ast import Select
from federation.core.influxql_parser import parse_query
from federation.core.shardmap import Shard, ShardMap
from federation.core.types import Series
from federation.router.frontdoor.copies import one_copy, plan

SHARDS = tuple(Shard(f"shard-{c}", f"http://shard-{c}:8086") for c in "abc")


def select(text: str) -> Select:
    statement = parse_query(text).statements[0]
    assert isinstance(statement, Select)
    return statement


@pytest.mark.parametrize(
    ("query", "tag", "keys", "sent"),
    [
        ("SELECT price FROM price WHERE pair = 'x'", None, {"x"}, "pair"),
        ("SELECT v FROM m WHERE host = 'x' GROUP BY a", "host", {"x"}, "a, host"),
        ("SELECT v FROM m WHERE pair = 'x'", None, None, "*"),
        ("SELECT v FROM m WHERE pair = 'x'", "host", None, "*"),
        ("SELECT price FROM price WHERE host = 'x'", "host", None, "*"),
        ("SELECT v FROM price, m WHERE pair = 'x'", "pair", None, "*"),
        ("SELECT v FROM /p/ WHERE pair = 'x'", None, None, "*"),
        ("SELECT price FROM price WHERE pair = ''", None, None, "*"),
        ("SELECT mean(price) FROM price GROUP BY time(1m), exchange", None, None, "time(1m), *"),
    ],
    ids=[
        "price-by-pair",
        "other-by-tag",
        "other-pair-not-its-key",
        "other-other-tag",
        "price-not-by-tag",
        "mixed-sources",
        "regex-source",
        "empty-pair",
        "unpinned",
    ],
)
def test_plan_pins_only_a_tag_every_selected_series_is_placed_by(
    query: str, tag: str | None, keys: set[str] | None, sent: str
) -> None:
    made = plan(select(query), ShardMap(SHARDS, placement_tag=tag))
    assert made.keys == (None if keys is None else frozenset(keys))
    rendered = select(f"SELECT v FROM m GROUP BY {sent}").dimensions
    assert made.dimensions == rendered


def _series(tags: dict[str, str], value: int) -> Series:
    return {"name": "m", "tags": tags, "columns": ["time", "v"], "values": [[0, value]]}


def test_one_copy_reads_each_series_from_its_first_owner_that_answered() -> None:
    shard_map = ShardMap(SHARDS, replication=2)
    key = "m,host=a"
    first, second = shard_map.owners(key)
    answers = {
        first: [_series({"host": "a"}, 1)],
        second: [_series({"host": "a"}, 2), _series({"host": "b"}, 3)],
    }
    assert sorted(s["values"][0][1] for s in one_copy(answers, shard_map)) == [1, 3]
