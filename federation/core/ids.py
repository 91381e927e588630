"""Ids: one grammar for pair, exchange and shard names everywhere they appear.

An id is lowercase letters, digits, ``-`` and ``_``, starting with a letter or digit, at
most 64 characters (``btcusd``, ``binance-us``, ``shard-a``). Sources lower-case what
they read before checking it; the API takes ids case-insensitively.
"""

from __future__ import annotations

import re

ID_MAX = 64
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
ID_RULE = "lowercase letters, digits, '-' or '_', starting with a letter or digit"
# What the API takes: the same, in any case of the ASCII letters (lowered before use).
API_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
API_ID_RULE = "ASCII letters (any case), digits, '-' or '_', starting with a letter or digit"
_ID_RE = re.compile(ID_PATTERN)
_API_ID_RE = re.compile(API_ID_PATTERN)


def is_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def is_api_id(value: str) -> bool:
    """An id as the API takes it, in any case (only ASCII: ``str.lower`` maps the Kelvin
    sign to ``k``, which must not slip through)."""
    return _API_ID_RE.fullmatch(value) is not None
