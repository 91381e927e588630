"""Ids: one grammar for pair, exchange and shard names everywhere they appear.

A market id (pair, exchange) is lowercase letters, digits, ``-``, ``_`` and ``.``,
starting with a letter or digit, at most 64 characters (``btcusd``, ``binance-us``, and
DEX pools such as ``imx.2weth``). Sources lower-case what they read before checking it;
the API takes ids case-insensitively. None of these characters needs escaping in line
protocol, and InfluxQL literals are quoted whole, so ``.`` is as safe as ``-``.

A shard name (``shard-a``) is the same without ``.``: it also names a directory of the
spool and the suffix of its credential variables (``INFLUX_TOKEN_SHARD_A``), where a
``.`` cannot go.
"""

from __future__ import annotations

import re

ID_MAX = 64
ID_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,63}"
ID_RULE = "lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
SHARD_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
# What the API takes: the same, in any case of the ASCII letters (lowered before use).
API_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
API_ID_RULE = "ASCII letters (any case), digits, '-', '_' or '.', starting with a letter or digit"
_ID_RE = re.compile(ID_PATTERN)
_API_ID_RE = re.compile(API_ID_PATTERN)


def is_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def is_api_id(value: str) -> bool:
    """An id as the API takes it, in any case (only ASCII: ``str.lower`` maps the Kelvin
    sign to ``k``, which must not slip through)."""
    return _API_ID_RE.fullmatch(value) is not None
