"""Times as the API writes them: ISO 8601 in UTC with milliseconds and ``Z``
(``2022-10-11T01:20:02.951Z``), from epoch milliseconds.

The API's rule (docs/api.md): a time is such a string, or an integer of epoch
milliseconds in a field whose name ends in ``_ms``; nothing else. Every ISO time the
API shows is formatted here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def iso_text(epoch_ms: Iterable[int]) -> dict[int, str]:
    """Each distinct epoch-millisecond time and its ISO time, each formatted once (a
    price answer formats every point, and many exchanges share a tick's time)."""
    distinct = list(dict.fromkeys(epoch_ms))
    if not distinct:
        return {}
    stamps = np.array(distinct, dtype="int64").astype("datetime64[ms]")
    text = np.char.add(np.datetime_as_string(stamps, unit="ms"), "Z")
    return dict(zip(distinct, text.tolist(), strict=True))


def iso_times(epoch_ms: Sequence[int]) -> list[str]:
    """The ISO time of each epoch-millisecond time."""
    text = iso_text(epoch_ms)
    return [text[t] for t in epoch_ms]


def iso_time(epoch_ms: int) -> str:
    """The ISO time of one epoch-millisecond time."""
    return iso_times([epoch_ms])[0]
