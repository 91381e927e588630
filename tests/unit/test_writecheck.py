"""The account of the shards' write counters against the points a refresh found."""

from __future__ import annotations

import pytest

from federation.core.types import Series
from federation.router.writecheck import WriteCheck, points_written


def settled() -> WriteCheck:
    """An account set by a full count, counter 100 and slack 10 on shard-a."""
    check = WriteCheck()
    check.account(["shard-a"], {"shard-a": 100}, {}, {"shard-a": 10})
    check.settled(complete=True)
    return check


@pytest.mark.parametrize(
    ("written", "found", "slack", "suspect"),
    [
        (160, 60, 10, False),
        (160, 50, 20, False),
        (161, 60, 10, True),
        (150, 60, 10, False),
        (90, 0, 0, True),
        (None, 60, 10, True),
        (160, 60, None, True),
    ],
    ids=[
        "all-found",
        "some-still-newer",
        "one-landed-elsewhere",
        "race",
        "restarted",
        "no-stats",
        "no-slack",
    ],
)
def test_account_suspects_points_landed_where_read_before(
    written: int | None, found: int, slack: int | None, suspect: bool
) -> None:
    check = settled()
    assert (
        check.account(["shard-a"], {"shard-a": written}, {"shard-a": found}, {"shard-a": slack})
        is suspect
    )


def test_account_race_hides_a_late_point_for_one_refresh_only() -> None:
    check = settled()
    first = check.account(["shard-a"], {"shard-a": 161}, {"shard-a": 62}, {"shard-a": 10})
    second = check.account(["shard-a"], {"shard-a": 221}, {"shard-a": 58}, {"shard-a": 10})
    assert (first, second) == (False, True)


def test_account_before_a_full_count_suspects() -> None:
    assert WriteCheck().account(["shard-a"], {"shard-a": 1}, {}, {"shard-a": 0}) is True


def test_points_written_sums_the_database_storage_shards() -> None:
    def shard(database: str, ok: int) -> Series:
        tags = {"database": database}
        return {"name": "shard", "tags": tags, "columns": ["writePointsOk"], "values": [[ok]]}

    answer = [[shard("crypto", 5), shard("crypto", 7), shard("_internal", 100)]]
    assert (points_written(answer, "crypto"), points_written(answer, None)) == (12, 112)
    assert points_written([[]], "crypto") is None
