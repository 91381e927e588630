"""Time, in one place: the epoch-millisecond clock every process reads."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock time as epoch milliseconds."""
    return time.time_ns() // 1_000_000
