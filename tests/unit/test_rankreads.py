"""The newest minutes read raw: moments per minute, points per shard, the slack past the
table's minute, replicas once, and a shard that did not answer missing everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from federation.core.types import Series
from federation.router.rankreads import from_points

MINUTE = 60_000
F = 10 * MINUTE  # the table is as of F: minutes up to (F - 1m, F] are closed


def answer(rows: list[list[Any]], partial: bool = False) -> list[list[Series]]:
    series: Series = {"name": "price", "columns": ["time", "price", "exchange", "pair"]}
    series["values"] = rows
    if partial:
        series["partial"] = True
    return [[series]]


A = [[F - MINUTE + 1, 1.0, "x", "p"], [F, 3.0, "x", "p"], [F + 1, 9.0, "x", "p"]]


def test_points_make_the_closed_minute_and_the_slack() -> None:
    newest = from_points({"a": answer(A)}, set(), F - 2 * MINUTE, F)
    part = newest.parts[F - MINUTE]
    assert (part.counts, newest.slack) == ({"a": 2}, {"a": 1})
    assert (part.moments["n"].tolist(), part.moments["mean"].tolist()) == ([2], [2.0])
    assert part.moments["m2"].tolist() == [2.0]  # (1 - 2)² + (3 - 2)²
    assert newest.parts[F - 2 * MINUTE].moments.empty


def test_replicas_count_once_in_moments_and_per_shard_in_counts() -> None:
    newest = from_points({"a": answer(A), "b": answer(A)}, set(), F - MINUTE, F)
    part = newest.parts[F - MINUTE]
    assert part.moments["n"].tolist() == [2]
    assert part.counts == {"a": 2, "b": 2}


@pytest.mark.parametrize("partial", [False, True], ids=["whole", "marked-partial-unchunked"])
def test_every_row_of_an_answer_counts(partial: bool) -> None:
    newest = from_points({"a": answer(A, partial)}, set(), F - MINUTE, F)
    assert newest.parts[F - MINUTE].counts == {"a": 2}


def test_a_shard_that_did_not_answer_is_missing_from_every_minute() -> None:
    newest = from_points({}, {"a"}, F - 2 * MINUTE, F)
    assert newest.missing == {"a"}
    assert [p.missing for p in newest.parts.values()] == [{"a"}, {"a"}]
