"""Durations: one grammar for every length of time the project reads.

A *length* is a whole number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``: ``90s``,
``30m``, ``6h``, ``7d``. A *look-back* (the API's ``duration``: how far before now a
window starts, as the original service wrote it) is a length after a minus sign:
``-24h``. Settings, CLI flags (spool age, rebalance window), alert windows and the
simulated backfill take lengths or look-backs in this grammar and no other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Up to 15 digits, so that an absurd length is told it is too long, not malformed.
_LENGTH_RE = re.compile(r"^([1-9][0-9]{0,14})([smhdw])$")
LENGTH_HINT = "a whole number, then one of s, m, h, d, w"


@dataclass(frozen=True, order=True)
class Duration:
    """A length of time: ``amount`` units. ``str()`` writes it as a look-back (``-24h``)."""

    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Duration:
        """A look-back such as ``-24h``; ValueError saying what one looks like."""
        if not text.startswith("-"):
            raise ValueError(
                f"{text!r} is not a duration like -30m, -24h or -7d (a minus sign, {LENGTH_HINT})"
            )
        try:
            return cls.parse_length(text[1:])
        except ValueError:
            raise ValueError(
                f"{text!r} is not a duration like -30m, -24h or -7d (a minus sign, {LENGTH_HINT})"
            ) from None

    @classmethod
    def parse_length(cls, text: str) -> Duration:
        """A length such as ``6h``; ValueError saying what one looks like."""
        match = _LENGTH_RE.match(text)
        if not match or int(match.group(1)) == 0:
            raise ValueError(
                f"{text!r} is not a length like 30m, 6h or 7d ({LENGTH_HINT}, above 0)"
            )
        return cls(int(match.group(1)), match.group(2))

    @classmethod
    def of_seconds(cls, seconds: int) -> Duration:
        """``seconds`` in the largest unit that divides it (``3600`` is ``1h``)."""
        for unit in ("w", "d", "h", "m"):
            if seconds % UNIT_SECONDS[unit] == 0:
                return cls(seconds // UNIT_SECONDS[unit], unit)
        return cls(seconds, "s")

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    @property
    def length(self) -> str:
        """The length without a sign: ``24h``."""
        return f"{self.amount}{self.unit}"

    def __str__(self) -> str:
        return f"-{self.length}"


def length_pattern(max_seconds: int, step_s: int = 1) -> str:
    """A regular expression matching exactly the lengths of this grammar that are at most
    ``max_seconds`` and a whole number of ``step_s`` (the API description's pattern of a
    bounded length; an amount's bound is spelt out digit by digit)."""
    units = []
    for unit, seconds in UNIT_SECONDS.items():
        most = max_seconds // seconds
        if most < 1 or (seconds % step_s and step_s % seconds):
            continue
        every = max(1, step_s // seconds)  # amounts must be multiples of this
        if most < every:
            continue
        if every == 1:
            amounts = _up_to(most)
        else:  # e.g. seconds in whole minutes: 60, 120, ... listed
            amounts = "|".join(str(n) for n in range(every, most + 1, every))
        units.append(f"(?:{amounts}){unit}")
    return "^(?:" + "|".join(units) + ")$"


def _up_to(most: int) -> str:
    """An alternation matching the whole numbers 1 to ``most`` without leading zeros."""
    digits = str(most)
    shorter = {1: [], 2: ["[1-9]"]}.get(len(digits), [f"[1-9][0-9]{{0,{len(digits) - 2}}}"])
    parts = list(shorter)
    for i, digit in enumerate(digits):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if high >= low:
            rest = len(digits) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" if rest else ""
            parts.append(digits[:i] + (str(low) if low == high else f"[{low}-{high}]") + tail)
    parts.append(digits)
    return "|".join(parts)
