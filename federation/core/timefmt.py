"""Times as the API writes them: ISO 8601 in UTC with milliseconds and ``Z``
(``2022-10-11T01:20:02.951Z``), from epoch milliseconds.

The API's rule (docs/api.md): a time is such a string, or an integer of epoch
milliseconds in a field whose name ends in ``_ms``; nothing else. Every ISO time the
API shows is formatted here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iso_times(epoch_ms: Sequence[int]) -> list[str]:
    """The ISO time of each epoch-millisecond time, each distinct time formatted once
    (a price answer formats every point, and many exchanges share a tick's time)."""
    if not epoch_ms:
        return []
    distinct = list(dict.fromkeys(epoch_ms))
    stamps = np.array(distinct, dtype="int64").astype("datetime64[ms]")
    text = dict(zip(distinct, np.datetime_as_string(stamps, unit="ms").tolist(), strict=True))
    return [text[t] + "Z" for t in epoch_ms]


def iso_time(epoch_ms: int) -> str:
    """The ISO time of one epoch-millisecond time."""
    return iso_times([epoch_ms])[0]
