"""The API's input grammars: exactly the values /openapi.json describes, no others."""

from __future__ import annotations

import re

import pytest

from federation.core.durations import UNIT_SECONDS, Duration, length_pattern
from federation.core.errors import BadParameter
from federation.core.inputs import parse_bool, parse_id, parse_whole, query_params


@pytest.mark.parametrize(
    "value",
    ["TRUE", "True", "1", "yes", "0", "no", ""],
    ids=["upper", "title", "one", "yes", "zero", "no", "empty"],
)
def test_bool_other_than_true_or_false_is_refused(value: str) -> None:
    with pytest.raises(BadParameter):
        parse_bool("strict", value)


@pytest.mark.parametrize(
    "value",
    ["\u2081", "+5", " 5", "5_0", "05", "0", "501", "", "\u0665"],
    ids=["subscript", "plus", "space", "underscore", "zero-led", "zero", "over", "empty", "arabic"],
)
def test_whole_number_outside_ascii_digits_or_bounds_is_400(value: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_whole("limit", value, 1, 500)
    assert info.value.parameter == "limit"


def test_id_with_a_letter_that_lowers_to_ascii_is_refused() -> None:
    with pytest.raises(BadParameter):
        parse_id("pair", "\u212a" + "rw")  # the Kelvin sign lowers to "k"


def test_repeated_parameter_is_400_naming_it() -> None:
    with pytest.raises(BadParameter) as info:
        query_params([("duration", "-1h"), ("duration", "-2h")], ("duration",))
    assert info.value.parameter == "duration"


@pytest.mark.parametrize(
    ("max_seconds", "step_s"),
    [(30 * 86400, 1), (86400, 60), (7 * 86400 + 5, 1), (90, 1)],
    ids=["retention", "alert-window", "odd-bound", "short"],
)
def test_length_pattern_matches_exactly_the_bounded_lengths(max_seconds: int, step_s: int) -> None:
    pattern = re.compile(length_pattern(max_seconds, step_s))
    for unit, seconds in UNIT_SECONDS.items():
        most = max_seconds // seconds  # amounts near 0, near the bound and between
        spread = range(0, most, max(1, most // 3000))
        for amount in {*range(1200), *spread, *range(max(0, most - 1200), most + 1200)}:
            text = f"{amount}{unit}"
            fits = amount > 0 and amount * seconds <= max_seconds and amount * seconds % step_s == 0
            assert (pattern.match(text) is not None) == fits, text
            if fits:
                assert Duration.parse_length(text).seconds <= max_seconds
