"""InfluxQL's tokens, as InfluxDB 1.x's scanner (influxql's scanner.go) reads them:
keywords, identifiers (bare or double-quoted), strings, numbers, integers, durations,
bind parameters, operators and, when the parser asks for one, a ``/regex/``. Quoted
text is unescaped here (``\\``, ``\'``, ``\"``, ``\n``); an unterminated string is a token of
its own, which the parser reports where InfluxDB does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from federation.core.influxql_ast import NS_PER


class ParseError(ValueError):
    """The query cannot be read; the message is InfluxDB's wording, without its
    ``error parsing query: `` prefix."""


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT, KEYWORD, STRING, NUMBER, INTEGER, DURATION, PARAM, OP, EOF, ILLEGAL
    text: str  # the keyword upper-cased, the identifier or string unescaped
    pos: int  # offset in the query
    quoted: bool = False


# fmt: off
KEYWORDS = frozenset((
    "ALL", "ALTER", "ANY", "AS", "ASC", "BEGIN", "BY", "CARDINALITY", "CREATE", "CONTINUOUS",
    "DATABASE", "DATABASES", "DEFAULT", "DELETE", "DESC", "DESTINATIONS", "DIAGNOSTICS",
    "DISTINCT", "DROP", "DURATION", "END", "EVERY", "EXACT", "EXPLAIN", "FIELD", "FOR", "FROM",
    "GRANT", "GRANTS", "GROUP", "GROUPS", "IN", "INF", "INSERT", "INTO", "KEY", "KEYS", "KILL",
    "LIMIT", "MEASUREMENT", "MEASUREMENTS", "NAME", "OFFSET", "ON", "ORDER", "PASSWORD",
    "POLICY", "POLICIES", "PRIVILEGES", "QUERIES", "QUERY", "READ", "REPLICATION", "RESAMPLE",
    "RETENTION", "REVOKE", "SELECT", "SERIES", "SET", "SHARD", "SHARDS", "SHOW", "SLIMIT",
    "SOFFSET", "STATS", "SUBSCRIPTION", "SUBSCRIPTIONS", "TAG", "TO", "USER", "USERS", "VALUES",
    "WHERE", "WITH", "WRITE", "AND", "OR", "TRUE", "FALSE",
))
# fmt: on
# Longest first, so ``=~`` is never read as ``=``.
_OPS = (
    *("=~", "!~", "!=", "<>", "<=", ">=", "::", "=", "<", ">", "+", "-", "*", "/", "%"),
    *("(", ")", ",", ";", ".", "&", "|", "^"),
)
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_UNIT = re.compile(r"ns|ms|u|µ|s|m|h|d|w")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Precedence as InfluxDB's (higher binds tighter).
PRECEDENCE = {
    "OR": 1,
    "AND": 2,
    "=": 4,
    "!=": 4,
    "<>": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "=~": 4,
    "!~": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
_ESCAPES = {"n": "\n", "\\": "\\", "'": "'", '"': '"'}
STATEMENT_HEADS = "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL"


class Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        start = self.text.rfind("\n", 0, pos) + 1
        return f"line {line}, char {pos - start + 1}"

    def _skip_space(self) -> None:
        while self.i < len(self.text):
            if self.text[self.i].isspace():
                self.i += 1
            elif self.text.startswith("--", self.i):
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            elif self.text.startswith("/*", self.i):
                end = self.text.find("*/", self.i + 2)
                self.i = len(self.text) if end < 0 else end + 2
            else:
                return

    def token(self) -> Token:
        self._skip_space()
        text, i = self.text, self.i
        if i >= len(text):
            return Token("EOF", "EOF", i + 1)  # InfluxDB places EOF one past the end
        ch = text[i]
        if ch in "\"'":
            value, closed = self._quoted(ch)
            if not closed:  # InfluxDB's BADSTRING: its text, placed before the quote
                return Token("BAD", value, i - 1)
            return Token("IDENT" if ch == '"' else "STRING", value, i, quoted=True)
        if ch == "$":
            self.i += 1
            if self.i < len(text) and text[self.i] == '"':
                return Token("PARAM", self._quoted('"')[0], i)
            match = re.compile(r"[A-Za-z0-9_]+").match(text, self.i)
            name = match.group() if match else ""
            self.i += len(name)
            return Token("PARAM", name, i)
        number = _NUMBER.match(text, i)
        if number:
            self.i = number.end()
            unit = _UNIT.match(text, self.i)
            if unit and number.group(1) is None:
                after = text[unit.end() : unit.end() + 1]
                if not (after.isalnum() or after == "_"):
                    self.i = unit.end()
                    return Token("DURATION", number.group() + unit.group(), i)
            return Token(
                "INTEGER" if number.group(1) is None and "." not in number.group() else "NUMBER",
                number.group(),
                i,
            )
        ident = _IDENT.match(text, i)
        if ident:
            self.i = ident.end()
            word = ident.group()
            if word.upper() in KEYWORDS:
                return Token("KEYWORD", word.upper(), i)
            return Token("IDENT", word, i)
        for op in _OPS:
            if text.startswith(op, i):
                self.i += len(op)
                return Token("OP", op, i)
        self.i += 1
        return Token("ILLEGAL", ch, i)

    def _quoted(self, quote: str) -> tuple[str, bool]:
        """The unescaped text between quotes, and whether the closing quote came."""
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.text) or self.text[self.i] == "\n":
                return "".join(out), False
            ch = self.text[self.i]
            if ch == quote:
                self.i += 1
                return "".join(out), True
            if ch == "\\":
                nxt = self.text[self.i + 1 : self.i + 2]
                if nxt not in _ESCAPES:
                    raise ParseError(f"bad escape sequence at {self.where(self.i)}")
                out.append(_ESCAPES[nxt])
                self.i += 2
                continue
            out.append(ch)
            self.i += 1

    def regex(self) -> str | None:
        """A ``/regex/`` at the current position (``\\/`` is a slash), or None."""
        self._skip_space()
        if not self.text.startswith("/", self.i):
            return None
        start = self.i
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.text):
                raise ParseError(
                    f"found {self.text[start:]}, expected regex at {self.where(start)}"
                )
            ch = self.text[self.i]
            if ch == "/":
                self.i += 1
                return "".join(out)
            if ch == "\\" and self.text[self.i + 1 : self.i + 2] == "/":
                out.append("/")
                self.i += 2
                continue
            out.append(ch)
            self.i += 1


def parse_duration(text: str) -> int:
    """Nanoseconds of an InfluxQL duration literal (``90s``, ``1500ms``)."""
    match = re.fullmatch(r"([0-9]+)(ns|ms|u|µ|s|m|h|d|w)", text)
    if not match:
        raise ParseError(f"invalid duration {text}")
    return int(match.group(1)) * NS_PER[match.group(2)]
