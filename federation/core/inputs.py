"""Validation of API inputs shared by the router and the alerts API: every failure is a
:class:`~federation.core.errors.BadParameter` naming the parameter."""

from __future__ import annotations

from collections.abc import Iterable

from federation.core.errors import BadParameter
from federation.core.ids import ID_MAX, ID_RULE, is_id

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_id(name: str, value: str) -> str:
    """A pair or exchange id such as ``btcusd`` or ``binance-us`` (case-insensitive)."""
    if len(value) > ID_MAX:
        raise BadParameter(f"{name} is longer than {ID_MAX} characters", parameter=name)
    lowered = value.lower()
    if not is_id(lowered):
        raise BadParameter(f"{name} {value!r} is malformed: use {ID_RULE}", parameter=name)
    return lowered


def parse_bool(name: str, value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise BadParameter(f"{name} must be true or false, not {value!r}", parameter=name) from None


def reject_unknown(params: Iterable[str], allowed: Iterable[str]) -> None:
    known = set(allowed)
    for name in params:
        if name not in known:
            raise BadParameter(
                f"unknown parameter {name!r}; this endpoint takes {', '.join(sorted(known))}",
                parameter=name,
            )
