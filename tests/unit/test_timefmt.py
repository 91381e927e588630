from __future__ import annotations

from datetime import UTC, datetime

import pytest

from federation.core.timefmt import iso_text, iso_time, iso_times


def test_iso_times_have_milliseconds_and_z() -> None:
    assert iso_times([1665451202951, 0, 1665451202951]) == [
        "2022-10-11T01:20:02.951Z",
        "1970-01-01T00:00:00.000Z",
        "2022-10-11T01:20:02.951Z",
    ]


def test_iso_text_holds_each_distinct_time_once() -> None:
    text = iso_text(iter([5, 0, 5]))
    assert list(text.items()) == [(5, "1970-01-01T00:00:00.005Z"), (0, "1970-01-01T00:00:00.000Z")]


def test_iso_text_of_no_time_is_empty() -> None:
    assert iso_text([]) == {}


@pytest.mark.parametrize(
    "epoch_ms",
    [0, 1, 999, 1665451202951, 1700003580000],
    ids=["epoch", "1ms", "999ms", "2022", "2023"],
)
def test_iso_time_reads_back_as_the_same_utc_millisecond(epoch_ms: int) -> None:
    parsed = datetime.fromisoformat(iso_time(epoch_ms))
    assert parsed.tzinfo == UTC
    assert round(parsed.timestamp() * 1000) == epoch_ms
