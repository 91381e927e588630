"""Strings a client may send where InfluxQL takes an identifier or a string: quotes,
escapes, injections, separators, keywords. The catalogue's quoting and the front door's
parser are both tested with every one of them."""

from __future__ import annotations

HOSTILE = {
    "quote": "a'b",
    "double-quote": 'a"b',
    "backslash": "a\\b",
    "newline": "a\nb",
    "space": "a b",
    "semicolon": "a;b",
    "or-injection": "x' OR ''='",
    "drop-injection": '\\\'; DROP DATABASE "c" --',
    "dot": "imx.2weth",
    "regex-dot": "a.*",
    "slash": "a/b",
    "keyword": "select",
    "unicode": "prix€",
}
