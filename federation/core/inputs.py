"""Validation of API inputs shared by the router and the alerts API: every failure is a
:class:`~federation.core.errors.BadParameter` naming the parameter.

The inputs are exactly what /openapi.json declares: each parameter once (a repeated one
is refused, not silently the last), booleans ``true`` or ``false``, whole numbers in
ASCII digits, ids in the one grammar of :mod:`federation.core.ids`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from federation.core.errors import BadParameter
from federation.core.ids import API_ID_RULE, ID_MAX, is_api_id

_BOOLS = {"true": True, "false": False}
_WHOLE = re.compile(r"[1-9][0-9]{0,17}|0")


def parse_id(name: str, value: str) -> str:
    """A pair or exchange id such as ``btcusd`` or ``binance-us`` (case-insensitive)."""
    if len(value) > ID_MAX:
        raise BadParameter(f"{name} is longer than {ID_MAX} characters", parameter=name)
    if not is_api_id(value):
        raise BadParameter(f"{name} {value!r} is malformed: use {API_ID_RULE}", parameter=name)
    return value.lower()


def parse_bool(name: str, value: str) -> bool:
    try:
        return _BOOLS[value]
    except KeyError:
        raise BadParameter(f"{name} must be true or false, not {value!r}", parameter=name) from None


def parse_whole(name: str, value: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` in ASCII digits: ``int`` alone would take
    ``+5``, `` 5`` and ``5_0``; ``str.isdigit`` a subscript digit, which ``int`` refuses."""
    if _WHOLE.fullmatch(value) is None or not low <= int(value) <= high:
        raise BadParameter(
            f"{name} must be a whole number from {low} to {high}, not {value!r}", parameter=name
        )
    return int(value)


def reject_unknown(params: Iterable[str], allowed: Iterable[str]) -> None:
    known = set(allowed)
    for name in params:
        if name not in known:
            takes = ", ".join(sorted(known)) if known else "no parameters"
            raise BadParameter(
                f"unknown parameter {name!r}; this endpoint takes {takes}", parameter=name
            )


def query_params(items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The query's ``(name, value)`` pairs as one value per name: an unknown name or a
    name given twice is a 400 naming it."""
    known = tuple(allowed)
    found: dict[str, str] = {}
    for name, value in items:
        reject_unknown((name,), known)
        if name in found:
            raise BadParameter(f"parameter {name!r} is given more than once", parameter=name)
        found[name] = value
    return found
